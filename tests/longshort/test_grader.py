"""Tests for longshort.grader.

Every gold answer of every benchmark must be accepted in the surface forms a model writes it in,
and rejected against a wrong answer. The benchmark files live in the shared folder beside the
repository (override with LONGSHORT_SHARED). GPQA question text is never copied here: only the
answer letters are read.
"""
from __future__ import annotations

import json
import multiprocessing
import os
import re
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest

from longshort import grader
from longshort.grader import GradingError, check_gold, extract_answer, grade, grading_stats, last_boxed

# Golds that differ as strings but that math-verify rightly counts as the same answer,
# so neither may serve as the other's wrong answer.
SAME_ANSWER = {frozenset({"5", "x=5"})}


@pytest.fixture
def load(shared_file):
    """Rows of a benchmark file of the shared data folder."""
    def rows(name: str) -> list[dict]:
        with shared_file(f"benchmarks/{name}.jsonl").open() as f:
            return [json.loads(line) for line in f if line.strip()]

    return rows


def boxed_forms(answer: str) -> list[str]:
    return [
        rf"\boxed{{{answer}}}",
        rf"The answer is $\boxed{{{answer}}}$.",
    ]


def integer_forms(value: Decimal) -> list[str]:
    """A whole number as models write it: plain, with a trailing .0, with thousands commas."""
    n = int(value)
    forms = [str(n), f"{n}.0"]
    if abs(n) >= 1000:
        forms.append(f"{n:,}")
    return forms


def wrong_gold(golds: list[str], i: int) -> str:
    """Another row's gold answer that is different from row i's."""
    def key(s):
        return "".join(s.split())

    for offset in range(1, len(golds)):
        other = golds[(i + offset) % len(golds)]
        if key(other) != key(golds[i]) and frozenset({golds[i], other}) not in SAME_ANSWER:
            return other
    raise AssertionError("every gold answer is the same")


def failures(kind: str, cases: list[tuple[str, str, bool]]) -> list[tuple[str, str, bool]]:
    """The (prediction, gold, expected) cases that grade gets wrong."""
    return [(p, g, want) for p, g, want in cases if grade(kind, p, g) != want]


# --- math ---------------------------------------------------------------------------------

NUMBER = re.compile(r"-?\d*\.?\d+")


def squeeze_spaces(latex: str) -> str:
    """Drop whitespace except where it ends a command name (``\\cot x`` must keep its space)."""
    return re.sub(r"(?<![A-Za-z])\s+|\s+(?![A-Za-z])", "", latex)


def swap_frac(latex: str) -> str:
    return latex.replace(r"\dfrac", r"\frac") if r"\dfrac" in latex else latex.replace(r"\frac", r"\dfrac")


def math_cases(golds: list[str]) -> list[tuple[str, str, bool]]:
    cases = []
    for i, gold in enumerate(golds):
        right = [gold, squeeze_spaces(gold), swap_frac(gold)]
        wrong = [wrong_gold(golds, i)]
        if NUMBER.fullmatch(gold):
            value = Decimal(gold)
            if value == value.to_integral_value():
                right += integer_forms(value)
            else:
                right.append(gold + "0")
            wrong.append(str(value + 1))
        cases += [(p, gold, True) for answer in dict.fromkeys(right) for p in boxed_forms(answer)]
        cases += [(p, gold, False) for answer in wrong for p in boxed_forms(answer)]
        # Only the last box counts.
        cases.append((rf"$\boxed{{{wrong[0]}}}$, no wait, $\boxed{{{gold}}}$", gold, True))
        cases.append((rf"$\boxed{{{gold}}}$, no wait, $\boxed{{{wrong[0]}}}$", gold, False))
    return cases


def test_math500_every_gold(load):
    golds = [row["answer"] for row in load("math500")]
    assert len(golds) == 500
    assert failures("math", math_cases(golds)) == []


@pytest.mark.parametrize("name", ["aime24", "aime25", "amc23"])
def test_competition_every_gold(name, load):
    # AMC golds are floats (27.0); AIME golds are strings, some zero-padded ("025").
    golds = [str(row["answer"]) for row in load(name)]
    assert failures("math", math_cases(golds)) == []


HAND_WRITTEN_MATH = [
    # (gold, prediction answer, equivalent?)
    (r"\frac{1}{2}", "0.5", True),
    (r"\frac{1}{2}", r"\dfrac12", True),
    (r"\frac{1}{2}", "1/2", True),
    (r"\frac{1}{2}", r"\tfrac{1}{2}", True),
    (r"\frac{14}{3}", "4.666667", True),
    (r"\frac{14}{3}", "4.67", False),
    (r"\frac{1}{3}", "0.333", False),
    ("23.0", "23", True),
    ("23", "23.0", True),
    ("204", "025", False),
    ("025", "25", True),
    ("0.15", r"15\%", True),
    (r"3\sqrt{13}", r"\sqrt{117}", True),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3,\frac{\pi}{2})", True),
    (r"\left( 3, \frac{\pi}{2} \right)", r"\left(3,\ \frac{\pi}{2}\right)", True),
    (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \pi)", False),
    ("p - q", "-q+p", True),
    ("p - q", "q - p", False),
    (r"\text{Evelyn}", "Evelyn", True),
    (r"\text{Evelyn}", r"\text{Navin}", False),
    ("1,-2", "-2, 1", True),
    ("1,-2", "1", False),
    ("3, 5, 7", "7", False),
    (r"10,\!080", "10080", True),
    (r"\$32,\!348", "32,348", True),
    ("90^\\circ", "90", True),
    (r"\begin{pmatrix} -1/3 \\ 2/3 \end{pmatrix}", r"\begin{pmatrix} -\frac13 \\ \frac23 \end{pmatrix}", True),
    ("2k+2", "2(k+1)", True),
    (r"x \in [-2,7]", "[-2, 7]", True),
    ("y = 2x + 3", "2x+3", True),
]


@pytest.mark.parametrize("gold, answer, equivalent", HAND_WRITTEN_MATH)
def test_math_hand_written(gold, answer, equivalent):
    assert grade("math", rf"so the answer is $\boxed{{{answer}}}$", gold) is equivalent


def test_math500_every_gold_as_a_delimited_answer(load):
    """The text between answer tags is the bare answer; it is read whole, in every form the boxed tests use."""
    golds = [row["answer"] for row in load("math500")]
    cases = []
    for i, gold in enumerate(golds):
        cases += [(answer, gold, True) for answer in dict.fromkeys([gold, squeeze_spaces(gold), swap_frac(gold)])]
        cases.append((wrong_gold(golds, i), gold, False))
    assert [(p, g, want) for p, g, want in cases if grade("math", p, g, delimited=True) != want] == []


def test_a_delimited_answer_is_read_whole_and_free_text_is_searched():
    assert grade("math", r"\dfrac12", r"\frac{1}{2}", delimited=True)
    assert grade("math", "0.5", r"\frac{1}{2}", delimited=True)
    assert grade("math", r"$\frac{14}{3}$", r"\frac{14}{3}", delimited=True)
    # Bare, 3\sqrt{13} is one expression; math-verify's search of free text picks the number 3 out of it.
    assert grade("math", r"3\sqrt{13}", r"\sqrt{117}", delimited=True)
    assert not grade("math", r"3\sqrt{13}", r"\sqrt{117}")
    assert grade("math", "The final answer is 34.", "34")
    assert extract_answer("math", "  7 \n", delimited=True) == "7"
    assert extract_answer("math", r"so $x = \boxed{\dfrac{7}{3}}$") == r"\frac{7}{3}"
    assert extract_answer("math", "   ") is None


def test_free_text_is_graded_after_its_think_block():
    after = r"<think>Is it $\boxed{3}$? Recount.</think> So the answer is $\boxed{5}$."
    assert grade("math", after, "5") and not grade("math", after, "3")
    # Thinking that never closed has no final answer, whatever it holds.
    assert not grade("math", r"<think>It is $\boxed{3}$, unless", "3")
    assert extract_answer("math", r"<think>It is $\boxed{3}$, unless") is None
    assert extract_answer("mcq", "<think>Answer: A</think>Answer: C") == "C"
    assert extract_answer("gsm8k", "<think>maybe 12</think>") is None
    assert extract_answer("gsm8k", "<think>maybe 12") is None
    # Between answer tags there is no think block to cut.
    assert extract_answer("synthetic", "<think>x</think>", delimited=True) == "<think>x</think>"


# --- last_boxed ----------------------------------------------------------------------------

def test_last_boxed_balances_braces():
    assert last_boxed(r"\boxed{1} then \boxed{\frac{\sqrt{3}}{2}}.") == r"\frac{\sqrt{3}}{2}"
    assert last_boxed(r"\boxed{\{1, 2\}}") == r"\{1, 2\}"
    assert last_boxed("no box") is None


def test_last_boxed_skips_a_truncated_box():
    assert last_boxed(r"\boxed{3} and finally \boxed{\frac{4}{") == "3"


def test_last_boxed_takes_the_last_box_to_open_among_complete_ones():
    assert last_boxed(r"\boxed{\boxed{1} + 2}") == "1"
    assert last_boxed(r"} \boxed{4} {") == "4"
    assert last_boxed(r"\boxed {5}") == "5"


def test_open_boxes_are_read_in_linear_time():
    opened = r"\boxed{" * 14000
    start = time.monotonic()
    assert last_boxed(opened * 10) is None
    assert last_boxed(opened + r"\boxed{7}" + opened) == "7"
    assert extract_answer("mcq", "answer" + " " * 200000) is None
    assert time.monotonic() - start < 2.0


# --- mcq -----------------------------------------------------------------------------------

def test_gpqa_every_gold(load):
    letters = [row["answer"] for row in load("gpqa_diamond")]
    assert set(letters) <= set("ABCD")
    cases = []
    for gold in letters:
        for letter in (gold, gold.lower()):
            right = [rf"\boxed{{{letter}}}", f"({letter})", f"Answer: {letter}", f"The answer is {letter}.", letter]
            cases += [(p, gold, True) for p in right]
        for other in sorted(set("ABCD") - {gold}):
            wrong = [rf"\boxed{{{other}}}", f"Answer: {other}", f"({gold}) looks tempting.\n\nAnswer: {other}"]
            cases += [(p, gold, False) for p in wrong]
    assert failures("mcq", cases) == []


@pytest.mark.parametrize(
    "prediction, letter",
    [
        (r"The final answer is $\boxed{\text{B}}$.", "B"),
        ("**Answer:** D", "D"),
        ("the correct answer is option c.", "C"),
        ("The answer is a bit subtle, but B fits.", "B"),  # "a" is the article, not option A
        ("A) 1 eV  B) 2 eV\nAnswer: B", "B"),
        ("D-glucose is formed.", None),
        ("no letter here", None),
    ],
)
def test_mcq_extraction(prediction, letter):
    assert extract_answer("mcq", prediction) == letter


# --- gsm8k ---------------------------------------------------------------------------------

def test_gsm8k_every_gold(load):
    golds = [row["answer"] for row in load("gsm8k")]
    assert all("####" in gold for gold in golds)
    cases = []
    for gold in golds:
        value = Decimal(gold.rsplit("####", 1)[1].strip().replace(",", ""))
        for answer in integer_forms(value):
            right = boxed_forms(answer) + [rf"\boxed{{\${answer}}}", f"So she makes ${answer}.", answer]
            cases += [(p, g, True) for p in right for g in (gold, answer)]
        wrong = str(value + 1)
        cases += [(p, gold, False) for p in boxed_forms(wrong) + [f"First {value}, then {wrong}."]]
    assert failures("gsm8k", cases) == []


@pytest.mark.parametrize(
    "prediction, number",
    [
        ("5-3 = 2", "2"),
        ("the change is -10 dollars", "-10"),
        (r"\boxed{18 \text{ eggs}}, and 7 left over", "18"),
        ("It costs $1,250.50 in total.", "1250.50"),
        ("1,2,3", "3"),
        ("no digits", None),
    ],
)
def test_gsm8k_extraction(prediction, number):
    assert extract_answer("gsm8k", prediction) == number


def test_gsm8k_gold_must_be_a_number():
    with pytest.raises(ValueError, match="not a number"):
        grade("gsm8k", "3", "#### three")


# --- synthetic and errors ------------------------------------------------------------------

def test_synthetic_is_exact_after_stripping():
    assert grade("synthetic", "  abc\n", "abc")
    assert not grade("synthetic", "ABC", "abc")
    assert not grade("synthetic", "a b c", "abc")


def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match="'essay'"):
        grade("essay", "x", "x")


# --- any thread, any process, a time limit -------------------------------------------------------------------

# Free text with boxes, which the grader has always read: these test where grading runs, not how it reads.
ANYWHERE = [
    (r"so $\boxed{\frac{7}{3}}$", r"\frac{7}{3}", True),
    (r"so $\boxed{\frac{3}{7}}$", r"\frac{7}{3}", False),
    (r"$\boxed{x \le 5}$", r"x \le 5", True),
    (r"$\boxed{2\sqrt{3}}$", r"\sqrt{12}", True),
]


def test_grades_from_worker_threads():
    with ThreadPoolExecutor(8) as pool:  # more threads than math workers: some wait for a free one
        verdicts = list(pool.map(lambda case: grade("math", case[0], case[1]), ANYWHERE * 4))
    assert verdicts == [want for *_, want in ANYWHERE * 4]


def test_grades_inside_a_ray_async_actor(local_ray):
    """As in OpenRLHF's rollout actor: an async method runs on the actor's event-loop thread, not the main one."""
    @local_ray.remote
    class Grader:
        async def grade(self, cases):
            from longshort.grader import grade

            return [grade("math", prediction, gold) for prediction, gold, _ in cases]

    actor = Grader.remote()
    try:
        assert local_ray.get(actor.grade.remote(ANYWHERE), timeout=300) == [want for *_, want in ANYWHERE]
    finally:
        local_ray.kill(actor)


def test_a_forked_child_grades_with_workers_of_its_own():
    assert grade("math", r"\boxed{2}", "2")  # the parent now has a worker
    starts = grading_stats()["worker_starts"]
    results = multiprocessing.get_context("fork").Queue()

    def child():
        results.put([grade("math", prediction, gold) for prediction, gold, _ in ANYWHERE])

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    assert results.get(timeout=120) == [want for *_, want in ANYWHERE]
    process.join(30)
    assert grade("math", r"\boxed{3}", "3") and grading_stats()["worker_starts"] == starts  # the parent's own


@pytest.mark.parametrize("prediction", [
    "$" + r"\frac{1}{" * 1000 + "2" + "}" * 1000 + "$",  # math-verify spends seconds failing to parse it
    r"$\boxed{10^{10^{10}}}$",  # sympy would compute the number
])
def test_a_pathological_input_ends_at_the_time_limit_as_incorrect_and_counted(prediction, monkeypatch):
    monkeypatch.setattr(grader, "TIME_LIMIT_S", 1.0)
    assert grade("math", r"\boxed{5}", "5")  # a ready worker
    before = grading_stats()["timeouts"]
    start = time.monotonic()
    assert not grade("math", prediction, "5")
    assert time.monotonic() - start < 1.0 + 1.5
    assert grading_stats()["timeouts"] == before + 1
    assert grade("math", r"\boxed{5}", "5")  # the killed worker has been replaced


def test_open_boxes_grade_in_bounded_time():
    opened = r"\boxed{" * 14000  # took over two minutes when last_boxed was quadratic
    for kind, gold in [("math", "5"), ("mcq", "A"), ("gsm8k", "5")]:
        start = time.monotonic()
        assert not grade(kind, opened, gold)
        assert time.monotonic() - start < grader.TIME_LIMIT_S


def test_a_worker_killed_while_idle_is_replaced():
    assert grade("math", r"\boxed{5}", "5")
    for worker in list(grader._pool.idle):
        os.kill(worker.process.pid, signal.SIGKILL)
        worker.process.wait()
    crashes = grading_stats()["crashes"]
    assert grade("math", r"\boxed{5}", "5")
    assert grading_stats()["crashes"] > crashes


def test_an_error_in_the_worker_is_raised():
    with pytest.raises(GradingError, match="unknown request 'transmute'"):
        grader._ask_math({"op": "transmute"})
    assert grade("math", r"\boxed{5}", "5")  # the worker goes on


# --- gold answers that cannot be graded ----------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["math", "mcq", "gsm8k", "synthetic"])
@pytest.mark.parametrize("gold, problem", [("", "empty"), ("  \n", "empty"), (None, "missing"), ("None", "null")])
def test_a_missing_gold_is_an_error_naming_it(kind, gold, problem):
    for call in (lambda: grade(kind, "None", gold), lambda: grade(kind, "", gold), lambda: check_gold(kind, gold)):
        with pytest.raises(ValueError, match=f"gold answer .*{problem}"):
            call()


def test_an_unreadable_gold_is_an_error():
    with pytest.raises(ValueError, match="cannot read the gold answer 'E'"):
        grade("mcq", "E", "E")
    with pytest.raises(ValueError, match="not a number"):
        check_gold("gsm8k", "#### many")
