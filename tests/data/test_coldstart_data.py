"""Cold-start transcripts are what inference writes: replayed by scripted agents through the orchestrator, a
synthesized transcript comes out token for token, self-opened summaries included. Model-free."""
from __future__ import annotations

from longshort.config import MemoryConfig, SamplingConfig, SolveConfig
from longshort.data.coldstart import build_transcript
from longshort.orchestrator import Orchestrator
from longshort.problem import Problem
from longshort.transcript import Turn

PROBLEM = Problem("p", "x=1.\nop1: +1.\nop2: +2.\nFind x modulo m=10.", "4", "synthetic", "synthetic")


def replies(transcript) -> dict[str, list[list[int]]]:
    """Per agent, what it generated at each of its requests: a step and the summary it opened are one generation."""
    out: dict[str, list[list[int]]] = {"long": [], "short": []}
    for turn in transcript.turns:
        if turn.kind == "summary" and not turn.forced_ids:
            out[turn.agent][-1] = out[turn.agent][-1] + turn.token_ids
        else:
            out[turn.agent].append(list(turn.token_ids))
    return out


def test_a_cold_start_transcript_with_self_opened_summaries_replays_token_for_token(protocol_tokenizer, scripted):
    tokenizer, p = protocol_tokenizer
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    pieces = [("long", encode("op1: +1. 1+1=2.")), ("short", encode("op2: 2+2=4.")), ("long", encode("Check: 4.")),
              ("long", encode("Yes, 4.")), ("short", encode("So")), ("long", encode("So x=4."))]

    def summary(at: int, text: str, segment: int) -> Turn:  # opened by the writer of the step it closes
        body = [p.ids["summary_open"]] + encode(text) + [p.ids["summary_close"]]
        return Turn(pieces[at][0], "summary", [], body, None, "stop", text, segment)

    built = build_transcript(PROBLEM, pieces, tokenizer, p, {1: summary(1, "x=4.", 0), 2: summary(2, "x=4 ok.", 1)},
                             memory="fold-append")
    queue = replies(built)
    agents = {name: scripted(lambda request, name=name: queue[name].pop(0)) for name in ("long", "short")}
    memory = MemoryConfig(policy="fold-append", folds="self", segment_budget=64, summary_cap=16)
    orch = Orchestrator(agents, tokenizer, p, SolveConfig(router="handoff", memory=memory),
                        SamplingConfig(temperature=0.0))
    (solved,) = orch.solve([PROBLEM])
    assert [(u.agent, u.kind, u.forced_ids, u.token_ids) for u in solved.turns] == \
        [(u.agent, u.kind, u.forced_ids, u.token_ids) for u in built.turns]
    assert solved.answer == "4" and solved.self_folds == 2 and not any(queue.values())


def test_cold_start_summaries_are_greedy_or_sampled_from_a_seed_of_their_own(protocol_tokenizer, scripted):
    """With coldstart.summary_temperature the data keeps the summarizer's spread of summaries; each summary's draw
    is seeded by the trace and the round, so a rerun writes the same data."""
    from longshort.config import ColdstartConfig
    from longshort.data.coldstart import fold

    tokenizer, p = protocol_tokenizer
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    pieces = [("long", encode("op1: +1. 1+1=2.")), ("short", encode("op2: +2. 2+2=4.")), ("long", encode("So x=4."))]

    def requests(**settings):
        agent = scripted(lambda request: encode("x=4.") + [p.ids["summary_close"]])
        config = ColdstartConfig(segment_tokens=len(pieces[0][1]), summary_tokens=8, **settings)
        fold([PROBLEM, PROBLEM], [pieces, pieces], {"long": agent, "short": agent}, tokenizer, p, config, "long")
        return [(r.temperature, r.seed) for r in agent.requests]

    assert {temperature for temperature, _ in requests()} == {0.0}
    sampled = requests(summary_temperature=1.0)
    assert {temperature for temperature, _ in sampled} == {1.0}
    assert len({seed for _, seed in sampled}) == len(sampled) == 4  # two traces, two summaries each
    assert requests(summary_temperature=1.0) == sampled
    assert requests(summary_temperature=1.0, seed=1) != sampled
