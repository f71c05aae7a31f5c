"""Real tiny models on Ray, every router × memory policy, checked structurally."""
from __future__ import annotations

import json
import time

import pytest

from longshort.agents.actor import AgentDiedError
from longshort.eval.modes import mode_table
from longshort.memory import POLICIES, render
from longshort.transcript import Transcript

STOPS = {"answered", "budget", "context", "malformed", "timeout", "error"}
PAIR_ROUTERS = ("alternate", "handoff", "mc")


def heldout(config, limit: int):
    from longshort.data.benchmarks import load_benchmark

    return load_benchmark("synthetic", limit=limit, tiny=config.tiny)


def modes(config):
    return mode_table(config, ",".join(["long", "short"] + [f"{r}/{p}" for r in PAIR_ROUTERS for p in POLICIES]))


@pytest.fixture(scope="module")
def hosted(tiny_config, local_ray):
    from longshort.runner import start

    return start(tiny_config, use_ray=True)


@pytest.fixture(scope="module")
def folding_config(tiny_config):
    """The tiny config with segments short enough that the pretrained models fold, at a turn boundary past
    ``fold_after`` and at the hard cap."""
    memory = tiny_config.solve.memory.model_copy(update={"segment_budget": 24, "fold_after": 16})
    return tiny_config.model_copy(update={"solve": tiny_config.solve.model_copy(update={"memory": memory})})


@pytest.fixture(scope="module")
def solved(folding_config, hosted):
    from longshort.runner import orchestrator

    problems = heldout(folding_config, 12)
    return {name: orchestrator(folding_config, hosted, solve).solve(problems)
            for name, solve in modes(folding_config).items()}


def test_every_mode_finishes_every_problem_with_a_reason(solved):
    assert set(solved) == {"long", "short"} | {f"{r}/{p}" for r in PAIR_ROUTERS for p in POLICIES}
    for name, transcripts in solved.items():
        assert len(transcripts) == 12 and len({t.problem.id for t in transcripts}) == 12
        for t in transcripts:
            assert t.stop_reason in STOPS, (name, t.stop_reason)
            assert (t.answer is not None) == (t.stop_reason == "answered")
            assert t.turns[-1].kind == "answer" or t.stop_reason != "answered"


def test_turn_order_follows_the_router(solved, hosted):
    protocol = hosted.protocol
    for name, transcripts in solved.items():
        for t in transcripts:
            writers = [turn.agent for turn in t.turns if turn.kind != "summary"]
            if name in ("long", "short"):
                assert set(writers) == {name}
            elif name.startswith("alternate"):
                assert writers == ["long", "short"] * (len(writers) // 2) + ["long"] * (len(writers) % 2)
            elif name.startswith("handoff"):  # long hands to short; short keeps writing until it hands back
                thinks = [turn for turn in t.turns if turn.kind != "summary"]
                assert thinks[0].agent == "long"
                for a, b in zip(thinks, thinks[1:]):
                    handed_back = a.token_ids[-1] == protocol.ids["handback"]
                    assert b.agent == ("long" if a.agent == "short" and handed_back else "short")


def test_mc_router_decides_the_first_turns_by_rollouts_then_falls_back(tiny_config, hosted):
    from longshort.runner import orchestrator

    solve = modes(tiny_config)["mc/unfold"]
    orch = orchestrator(tiny_config, hosted, solve)
    transcripts = orch.solve(heldout(tiny_config, 8))
    stats, cap = orch.router.stats, tiny_config.scoring.router_turns
    assert 0 < stats["decisions"] <= cap * len(transcripts)
    assert stats["decisions"] == stats["long"] + stats["short"] + stats["fallback"]
    assert all(0 < n <= cap for n in orch.router.decided.values())
    assert all(t.stop_reason in STOPS for t in transcripts)
    assert orch.router.rollouts.stats["rollouts"] > 0


class Slowed:
    """An agent handle whose every model call takes ``delay`` seconds more, counting the calls."""

    def __init__(self, agent, delay: float):
        self.agent, self.delay, self.calls = agent, delay, 0

    def submit(self, requests):
        self.calls += 1
        time.sleep(self.delay)
        return self.agent.submit(requests)

    def result(self, pending):
        return self.agent.result(pending)

    def generate(self, requests):
        return self.result(self.submit(requests))

    def info(self):
        return self.agent.info()


def test_the_mc_routers_lookahead_counts_as_model_time_not_the_orchestrators(tiny_config, hosted):
    from longshort.orchestrator import Orchestrator

    agents, tokenizer, protocol = hosted.agents, hosted.tokenizer, hosted.protocol
    slowed = {name: Slowed(agent, 0.05) for name, agent in agents.items()}
    orch = Orchestrator(slowed, tokenizer, protocol, modes(tiny_config)["mc/unfold"], tiny_config.sampling,
                        tiny_config.scoring)
    orch.solve(heldout(tiny_config, 4))
    calls = sum(agent.calls for agent in slowed.values())
    assert calls > orch.stats["rounds"]  # the router called the models between rounds
    assert orch.stats["backend_s"] >= 0.05 * calls


def test_token_accounting_equals_the_ids(solved):
    for transcripts in solved.values():
        for t in transcripts:
            counts = t.accounting()
            for agent in ("long", "short"):
                assert counts[f"{agent}_tokens"] == sum(len(turn.token_ids) for turn in t.turns if turn.agent == agent)
            for turn in t.turns:
                assert len(turn.logprobs) == len(turn.token_ids) > 0
                assert turn.stop_reason in ("stop", "length")
                assert turn.closing_ids == ([] if turn.stop_reason == "stop" else turn.closing_ids[:1])


def test_folded_contexts_stay_within_segment_budget_summary_cap_and_question(solved, folding_config):
    memory = folding_config.solve.memory
    folded_somewhere, cut_at_the_cap = False, False
    for name, transcripts in solved.items():
        if name.endswith("unfold") or name in ("long", "short"):
            for t in transcripts:
                assert t.peak_context == len(render(t, "unfold"))  # the last turn saw everything
            continue
        policy = name.split("/")[1]
        for t in transcripts:
            folded_somewhere |= t.folds > 0
            for k, turn in enumerate(t.turns):
                partial = Transcript(t.problem, t.prompt_ids, turns=t.turns[:k])
                context = len(render(partial, policy)) + len(turn.forced_ids)
                summaries = sum(p.kind == "summary" for p in t.turns[:k]) if policy == "fold-append" else min(1, t.turns[k].segment)
                segment = [p for p in t.turns[:k] if p.segment == turn.segment and p.kind != "summary"]
                written = sum(len(p.token_ids) for p in segment)
                assert written <= memory.segment_budget
                if turn.kind != "summary":  # a think or answer turn starts only while the segment is short of fold_after
                    assert written < memory.fold_at, (name, k, written)
                elif k < len(t.turns) - 1:  # a summary comes once it is reached, or at the hard cap
                    assert written >= memory.fold_at, (name, k, written)
                    cut_at_the_cap |= written == memory.segment_budget
                bound = len(t.prompt_ids) + summaries * (memory.summary_cap + 2) + memory.segment_budget + 3 * (len(segment) + 1)
                assert context <= bound, (name, k, context, bound)
            for turn in t.turns:
                if turn.kind == "summary":
                    assert len(turn.token_ids) <= memory.summary_cap
    assert folded_somewhere, "no transcript folded: fold_after is never reached"
    assert cut_at_the_cap, "no turn ran into the hard cap"


def test_fold_append_contexts_after_each_fold_are_prefixes_of_the_next(solved):
    for t in solved["alternate/fold-append"]:
        after_folds = [render(Transcript(t.problem, t.prompt_ids, turns=t.turns[: k + 1]), "fold-append")
                       for k, turn in enumerate(t.turns) if turn.kind == "summary"]
        for a, b in zip(after_folds, after_folds[1:]):
            assert b[: len(a)] == a


def test_transcripts_round_trip_through_json(solved):
    for transcripts in solved.values():
        for t in transcripts:
            assert Transcript.from_dict(json.loads(json.dumps(t.to_dict()))) == t


def test_a_model_that_never_stops_is_ended_by_budgets(tiny_config, hosted):
    from longshort.runner import orchestrator

    solve = tiny_config.solve.model_copy(update={"router": "long", "chunk_tokens": 3, "max_long_tokens": 10})
    transcripts = orchestrator(tiny_config, hosted, solve).solve(heldout(tiny_config, 3))
    for t in transcripts:
        assert t.stop_reason == "budget" and t.tokens("long") <= 10
        assert all(turn.stop_reason == "length" and turn.closing_ids for turn in t.turns)


def test_actor_dying_mid_run_keeps_finished_transcripts_and_a_rerun_resumes(tiny_config, local_ray, tmp_path):
    from longshort.runner import orchestrator, solve_file, start

    output = tmp_path / "out.jsonl"
    problems = heldout(tiny_config, 8)
    solve = tiny_config.solve.model_copy(update={"concurrency": 2})
    hosted = start(tiny_config, use_ray=True)
    killed = []

    def kill_short_after_first(transcript):
        if not killed:
            killed.append(transcript.problem.id)
            local_ray.kill(hosted.agents["short"].handle)

    with pytest.raises(AgentDiedError, match="agent 'short' died"):
        solve_file(orchestrator(tiny_config, hosted, solve), problems, output, on_done=kill_short_after_first)
    first = [json.loads(line)["problem"]["id"] for line in open(output)]
    assert killed[0] in first and len(first) < len(problems)
    local_ray.kill(hosted.agents["long"].handle)  # give its CPU back, as a rerun in a new process would find it
    solve_file(orchestrator(tiny_config, start(tiny_config, use_ray=True), solve), problems, output)
    ids = [json.loads(line)["problem"]["id"] for line in open(output)]
    assert sorted(ids) == sorted(p.id for p in problems)
