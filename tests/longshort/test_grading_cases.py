"""The grader on its category cases (eval/grading_cases.py): each way an answer is written in a prediction."""
from __future__ import annotations

import pytest

from longshort.eval.grading_cases import CASES, CATEGORIES
from longshort.grader import grade


def test_every_category_has_right_and_wrong_predictions():
    for category in CATEGORIES:
        verdicts = {case.correct for case in CASES if case.category == category}
        assert verdicts == {True, False}, category


@pytest.mark.parametrize("case", CASES, ids=[f"{c.category}-{i}" for i, c in enumerate(CASES)])
def test_case(case):
    assert grade("math", case.prediction, case.gold, delimited=case.delimited) is case.correct
