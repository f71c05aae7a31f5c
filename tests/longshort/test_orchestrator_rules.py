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


def test_an_answer_the_chunk_budget_cuts_ends_the_turn_before_it_and_the_pair_answers_later(run, words):
    """Cut at chunk_tokens after its answer tag, a turn is not malformed: it keeps what came before the tag (the
    ids and log-probs the writer generated there) and the next turn may answer."""
    encode, p = words
    thought = encode("op1: +4. 3+4=7.")
    answer = [p.answer_open_id] + encode("7") + [p.answer_close_id]
    (t,), _ = run(SolveConfig(router="long", chunk_tokens=len(thought) + 2), long=lambda r: (
        answer if p.close_id("long") in r.prompt_ids else thought + answer))
    first, second = t.turns
    assert first.kind == "think" and first.token_ids == thought and first.stop_reason == "length"
    assert first.closing_ids == [p.close_id("long")]
    assert first.logprobs == [-1.0] * len(thought)  # the scripted agent gives -1 to each token
    assert second.kind == "answer" and t.stop_reason == "answered" and t.answer == "7"


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


def self_folding(segment_budget=12, summary_cap=4, max_rounds=8, policy="fold-append") -> MemoryConfig:
    return MemoryConfig(policy=policy, folds="self", segment_budget=segment_budget, fold_after=None,
                        summary_cap=summary_cap, max_rounds=max_rounds, summarizer="short")


def test_a_writer_that_closes_its_step_with_a_summary_folds_by_itself(run, words):
    encode, p = words
    step, note = encode("1234"), encode("x=7.")

    def writer(request):  # a step, then its summary, in one turn; the third turn answers
        if request.prompt_ids.count(p.ids["summary_close"]) >= 2:
            return [p.answer_open_id] + encode("7") + [p.answer_close_id]
        return step + [p.ids["summary_open"]] + note + [p.ids["summary_close"]]

    (t,), agents = run(SolveConfig(router="long", memory=self_folding()), long=writer)
    assert [(u.kind, u.agent) for u in t.turns] == [("think", "long"), ("summary", "long")] * 2 + [("answer", "long")]
    first, summary = t.turns[0], t.turns[1]
    assert first.token_ids == step and first.closing_ids == [] and first.forced_ids == [p.open_id("long")]
    assert summary.forced_ids == [] and summary.token_ids == [p.ids["summary_open"]] + note + [p.ids["summary_close"]]
    assert len(summary.logprobs) == len(summary.token_ids)  # the decision to fold is the writer's own action
    assert t.stop_reason == "answered" and t.folds == 2 and t.accounting()["self_folds"] == 2
    # unfolded, the ids are exactly the ones generated; folded, the next step sees the prompt and the summaries
    request = agents["long"].requests[2]
    assert list(request.prompt_ids) == t.prompt_ids + summary.ids + t.turns[3].ids + [p.open_id("long")]
    assert t.memory == "fold-append"


def test_a_summary_past_its_cap_is_cut_and_closed_and_a_writer_that_never_folds_meets_the_hard_cap(run, words):
    encode, p = words
    opener, close = p.ids["summary_open"], p.ids["summary_close"]

    def rambling(request):  # a short step, then a summary that never ends
        return encode("12") + [opener] + encode("9" * 40)

    (t,), _ = run(SolveConfig(router="long", max_turns=2, memory=self_folding(summary_cap=4)), long=rambling)
    summary = t.turns[1]
    assert summary.kind == "summary" and summary.token_ids[0] == opener and len(summary.token_ids) == 5
    assert summary.closing_ids == [close]

    def never(request):  # thinks on and on: each turn is cut at the room left in the segment
        if request.prompt_ids[-1] == opener:
            return encode("x=7") + [close]
        return encode("1" * 30)

    memory = self_folding(segment_budget=10, max_rounds=2)
    (t,), _ = run(SolveConfig(router="long", chunk_tokens=6, memory=memory), long=never)
    thinks = [len(u.token_ids) for u in t.turns if u.kind == "think"]
    assert thinks == [6, 4, 6, 4, 6, 4] and t.stop_reason == "budget"  # two forced folds, then the round limit
    assert [u.forced_ids for u in t.turns if u.kind == "summary"] == [[opener], [opener]]
    assert t.accounting()["self_folds"] == 0 and t.folds == 2


def test_a_writer_that_folds_every_turn_is_stopped_by_the_round_limit(run, words):
    encode, p = words

    def eager(request):
        return encode("1") + [p.ids["summary_open"]] + encode("x") + [p.ids["summary_close"]]

    (t,), _ = run(SolveConfig(router="long", memory=self_folding(max_rounds=3)), long=eager)
    assert t.folds == 3 and t.stop_reason == "budget" and t.turns[-1].kind == "think"


def test_unfold_with_summaries_writes_them_and_keeps_everything_in_context(run, words):
    encode, p = words

    def writer(request):
        return encode("12") + [p.ids["summary_open"]] + encode("x") + [p.ids["summary_close"]]

    (t,), agents = run(SolveConfig(router="long", max_turns=4, memory=self_folding(policy="unfold-summaries")),
                       long=writer)
    assert t.folds == 2 and len(agents["long"].requests) == 2  # each turn wrote a step and its summary
    second = agents["long"].requests[1]
    assert list(second.prompt_ids) == t.prompt_ids + t.turns[0].ids + t.turns[1].ids + [p.open_id("long")]


def test_folds_self_refuses_a_forced_fold_point():
    with pytest.raises(ValueError, match="set fold_after: null"):
        MemoryConfig(policy="fold-append", folds="self", fold_after=8)
