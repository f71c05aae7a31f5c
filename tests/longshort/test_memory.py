"""Memory policies render an agent's context from a hand-built transcript: what each keeps and drops."""
from __future__ import annotations

import pytest

from longshort.memory import POLICIES, render
from longshort.problem import Problem
from longshort.transcript import Transcript, Turn

PROMPT = [1, 2]


def turn(agent, kind, body, segment, forced=(90,)):
    return Turn(agent, kind, list(forced), list(body), None, "stop", "", segment)


def folded(memory: str = "unfold") -> Transcript:
    """Two closed segments (each ending in its summary) and the current one."""
    turns = [turn("long", "think", [10, 11], 0), turn("short", "think", [12], 0), turn("long", "summary", [50], 0),
             turn("long", "think", [20], 1), turn("short", "summary", [51, 52], 1),
             turn("long", "think", [30, 31], 2)]
    return Transcript(Problem("p", "q", "a", "s", "synthetic"), PROMPT, memory=memory, turns=turns)


def ids(*turns: Turn) -> list[int]:
    return PROMPT + [t for u in turns for t in u.ids]


def test_unfold_keeps_every_turn_summaries_included():
    t = folded()
    assert render(t) == ids(*t.turns)


def test_fold_restart_keeps_the_latest_summary_and_the_current_segment():
    t = folded("fold-restart")
    assert render(t) == ids(t.turns[4], t.turns[5])


def test_fold_append_keeps_every_summary_and_the_current_segment():
    t = folded("fold-append")
    assert render(t) == ids(t.turns[2], t.turns[4], t.turns[5])


def test_right_after_a_fold_the_segment_is_empty_and_fold_append_contexts_extend_each_other():
    t = folded("fold-append")
    after_first = Transcript(t.problem, PROMPT, memory="fold-append", turns=t.turns[:3])
    after_second = Transcript(t.problem, PROMPT, memory="fold-append", turns=t.turns[:5])
    assert render(after_first) == ids(t.turns[2])
    assert render(after_second) == ids(t.turns[2], t.turns[4])
    assert render(after_second)[: len(render(after_first))] == render(after_first)  # prefix caching applies


def test_a_policy_can_be_named_to_see_the_same_turns_another_way():
    t = folded("fold-restart")
    assert render(t, "unfold") == render(folded())
    with pytest.raises(KeyError):
        render(t, "no-such-policy")
    assert set(POLICIES) >= {"unfold", "fold-restart", "fold-append"}
