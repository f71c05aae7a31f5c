"""The orchestrator's rules with scripted agents: budgets, folds, stops and malformed output, model-free.

A scripted agent replies from a function of its request, so each rule is checked against exactly the output that
triggers it, in milliseconds; tests/longshort/test_orchestrator.py runs the same orchestrator with real models.
"""
from __future__ import annotations

import time

import pytest

from longshort.config import MemoryConfig, SamplingConfig, SolveConfig
from longshort.orchestrator import Orchestrator
from longshort.problem import Problem

PROBLEM = Problem("p", "x=3.\nop1: +4.\nFind x modulo m=10.", "7", "unit", "synthetic")


@pytest.fixture
def run(protocol_tokenizer, scripted):
    """``run(solve, long=reply, short=reply)`` solves PROBLEM; returns the transcript and the agents."""
    tokenizer, protocol = protocol_tokenizer

    def solve_with(solve: SolveConfig, long=None, short=None, problems=(PROBLEM,)):
        agents = {"long": scripted(long or (lambda r: [])), "short": scripted(short or (lambda r: []))}
        orch = Orchestrator(agents, tokenizer, protocol, solve, SamplingConfig(temperature=0.0))
        return orch.solve(list(problems)), agents

    return solve_with


@pytest.fixture
def words(protocol_tokenizer):
    tokenizer, protocol = protocol_tokenizer
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    return encode, protocol


def test_an_answer_in_its_tags_ends_the_transcript_with_that_answer(run, words):
    encode, p = words
    (t,), _ = run(SolveConfig(router="long"), long=lambda r: encode("So x=") + [p.answer_open_id] + encode("7")
                  + [p.answer_close_id])
    assert t.stop_reason == "answered" and t.answer == "7" and t.turns[-1].kind == "answer"
    assert t.router == "long" and t.memory == "unfold"


def test_a_tag_of_the_other_agent_inside_a_turn_is_malformed(run, words):
    encode, p = words
    (t,), _ = run(SolveConfig(router="long"), long=lambda r: encode("op1") + [p.open_id("short")] + encode("x"))
    assert t.stop_reason == "malformed" and "<|short|>" in t.error


def test_max_turns_and_the_token_budgets_stop_with_budget(run, words):
    encode, p = words
    think = lambda r: encode("op1: +4. 3+4=7.") + [p.close_id("long")]  # noqa: E731
    (t,), _ = run(SolveConfig(router="long", max_turns=3), long=think)
    assert t.stop_reason == "budget" and len(t.turns) == 3
    (t,), agents = run(SolveConfig(router="long", chunk_tokens=4, max_long_tokens=10), long=lambda r: encode("1" * 50))
    assert t.stop_reason == "budget" and t.tokens("long") == 10
    assert [r.max_new_tokens for r in agents["long"].requests] == [4, 4, 2]  # chunk_tokens, then what is left
    assert all(u.closing_ids == [p.close_id("long")] for u in t.turns)  # a cut turn is closed for the next context


def test_the_wall_clock_stops_a_transcript_with_timeout(run, words):
    encode, p = words

    def slow(request):
        time.sleep(0.06)
        return encode("op1.") + [p.close_id("long")]

    (t,), _ = run(SolveConfig(router="long", timeout_s=0.1), long=slow)
    assert t.stop_reason == "timeout" and 1 <= len(t.turns) <= 3


def test_a_summary_is_forced_past_fold_after_and_max_rounds_ends_the_folding(run, words):
    encode, p = words
    memory = MemoryConfig(policy="fold-restart", segment_budget=12, fold_after=6, summary_cap=5, max_rounds=2,
                          summarizer="short")
    think = lambda r: encode("1234") + [p.close_id("long")]  # noqa: E731  five tokens a turn
    summary = lambda r: encode("x=7.") + [p.ids["summary_close"]]  # noqa: E731
    (t,), agents = run(SolveConfig(router="long", memory=memory), long=think, short=summary)
    kinds = [u.kind for u in t.turns]
    # two rounds of folding, then the third segment fills and, with no round left, the transcript stops
    assert kinds == ["think", "think", "summary"] * 2 + ["think", "think"] and t.stop_reason == "budget"
    assert all(u.agent == "short" for u in t.turns if u.kind == "summary") and t.folds == 2
    # after the first fold the long agent sees the prompt, the summary and its segment: not the first two turns
    seen = agents["long"].requests[2].prompt_ids
    assert list(seen) == t.prompt_ids + t.turns[2].ids + [p.open_id("long")]


def test_the_hard_cap_cuts_a_long_turn_and_summarizes(run, words):
    encode, p = words
    memory = MemoryConfig(policy="fold-append", segment_budget=7, fold_after=None, summary_cap=3, max_rounds=1,
                          summarizer="long")

    def reply(request):
        opened = request.prompt_ids[-1]
        return encode("x=7") if opened == p.ids["summary_open"] else encode("1" * 30)

    (t,), _ = run(SolveConfig(router="long", chunk_tokens=20, memory=memory), long=reply)
    assert t.turns[0].kind == "think" and len(t.turns[0].token_ids) == 7  # cut at segment_budget
    assert t.turns[1].kind == "summary" and t.turns[1].closing_ids == [p.ids["summary_close"]]


def test_concurrency_bounds_the_transcripts_decoded_together(run, words):
    encode, p = words
    problems = [Problem(f"p{i}", PROBLEM.question, "7", "unit", "synthetic") for i in range(5)]

    def answer(request):
        return [p.answer_open_id] + encode("7") + [p.answer_close_id]

    transcripts, agents = run(SolveConfig(router="long", concurrency=2), long=answer, problems=problems)
    assert sorted(t.problem.id for t in transcripts) == [f"p{i}" for i in range(5)]
    assert agents["long"].calls == [2, 2, 1]
