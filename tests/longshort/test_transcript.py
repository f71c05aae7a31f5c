"""The Transcript: lossless JSON, token accounting, segments."""
from __future__ import annotations

import json

from longshort.problem import Problem
from longshort.transcript import Transcript, Turn


def sample() -> Transcript:
    turns = [Turn("long", "think", [9], [1, 2, 3], [-0.5, -0.25, -1.0], "stop", "a b", 0),
             Turn("long", "summary", [8], [4], [-0.1], "length", "s", 0, closing_ids=[7]),
             Turn("short", "answer", [6], [5, 5], [-2.0, -0.5], "stop", "5", 1)]
    return Transcript(Problem("p1", "2+3?", "5", "unit", "math", {"k": [1]}), [100, 101], sample=3,
                      router="handoff", memory="fold-append", turns=turns, answer="5", stop_reason="answered",
                      peak_context=12, seconds={"long": 0.5})


def test_json_round_trip_loses_nothing():
    t = sample()
    back = Transcript.from_dict(json.loads(json.dumps(t.to_dict())))
    assert back == t and back.turns[1].closing_ids == [7] and back.memory == "fold-append"


def test_accounting_counts_generated_tokens_by_agent_and_kind():
    t = sample()
    assert t.tokens() == 6 and t.tokens("long") == 4 and t.tokens("short", "answer") == 2
    counts = t.accounting()
    assert counts["long_tokens"] == 4 and counts["summary_tokens"] == 1 and counts["folds"] == 1
    assert t.turns[1].ids == [8, 4, 7]  # forced open tag, generated, closing tag the orchestrator added


def test_a_summary_closes_its_segment():
    t = sample()
    assert t.segment == 1 and t.folds == 1
    t.turns = t.turns[:2]
    assert t.segment == 1
    t.turns = t.turns[:1]
    assert t.segment == 0
    assert sample().done and not Transcript(t.problem, [1]).done


def test_transcripts_written_before_router_and_memory_were_recorded_still_load():
    data = sample().to_dict()
    del data["router"], data["memory"]
    old = Transcript.from_dict(data)
    assert old.memory == "unfold" and old.router == ""
