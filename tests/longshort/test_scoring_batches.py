"""The scorer's batching and cold-start's trace filter with scripted agents: config keys that shape the work.

A scripted scoring agent answers right after a prefix that holds the word "key" and wrong before, so importance
and the calls the scorer makes are known exactly, in milliseconds.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from longshort.config import load_config, override
from longshort.importance import ScoringInput, score_file
from longshort.problem import Problem
from longshort.runner import Hosted

TINY_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


@pytest.fixture
def hosted(protocol_tokenizer, scripted):
    tokenizer, protocol = protocol_tokenizer
    key = tokenizer.encode("key", add_special_tokens=False)

    def answer(request):
        ids = list(request.prompt_ids)
        seen = any(ids[i:i + len(key)] == key for i in range(len(ids)))
        if request.prompt_ids[-1] == protocol.ids["summary_open"]:
            return tokenizer.encode("x=7.", add_special_tokens=False) + [protocol.ids["summary_close"]]
        return [protocol.answer_open_id] + tokenizer.encode("7" if seen else "3", add_special_tokens=False) + [
            protocol.answer_close_id]

    agent = scripted(answer)
    return Hosted({"long": agent, "short": agent}, tokenizer, protocol)


def inputs(count: int, prediction: str | None = None) -> list[ScoringInput]:
    thinking = "Start here.\n\nThe key step.\n\nDone."
    return [ScoringInput(Problem(f"t{i}", "x=3.\nop1: +4.\nFind x modulo m=10.", "7", "unit", "synthetic"),
                         thinking, prediction) for i in range(count)]


def test_traces_per_batch_sets_how_many_traces_share_each_depths_call(hosted, tmp_path):
    config = override(load_config(TINY_CONFIG), {"scoring.traces_per_batch": 2, "scoring.rollouts": 3,
                                                 "chunking.min_tokens": 1})
    score_file(config, hosted, inputs(5), tmp_path / "scored.jsonl")
    # three thoughts, so four prefixes (depths 0..3) per batch of traces: batches of 2, 2 and 1
    assert hosted.agents["long"].calls == [2] * 4 + [2] * 4 + [1] * 4
    record = json.loads((tmp_path / "scored.jsonl").read_text().splitlines()[0])
    assert [c["acc"] for c in record["chunks"]] == [0.0, 1.0, 1.0] and record["acc0"] == 0.0
    assert [c["delta"] > 0 for c in record["chunks"]] == [False, True, False]


def test_keep_wrong_decides_whether_a_trace_whose_own_answer_is_wrong_is_learned_from(hosted, tmp_path):
    from longshort.data.coldstart import synthesize

    for keep, used in ((False, 2), (True, 4)):
        config = override(load_config(TINY_CONFIG), {"coldstart.keep_wrong": keep, "chunking.min_tokens": 1,
                                                     "coldstart.fold_share": 0.0})
        out = tmp_path / str(keep)
        out.mkdir()
        wrong = [ScoringInput(Problem(f"w{i}", i.problem.question, "7", "unit", "synthetic"), i.thinking, "3")
                 for i in inputs(2)]
        data = synthesize(config, hosted, inputs(2, prediction="7") + wrong, out, log=lambda *_: None)
        assert data["manifest"]["counts"]["used"] == used
        assert data["manifest"]["counts"]["wrong_answer"] == (0 if keep else 2)
