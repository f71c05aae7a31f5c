"""Training the learned router with scripted agents (tests/conftest.py ``scripted_pair``): gold mc decisions as
labels, resumable labelling, a classifier that learns them, and labels of other agents refused by name."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from longshort.config import load_config, override
from longshort.eval.modes import mode_table
from longshort.problem import Problem
from longshort.protocol import Protocol
from longshort.rl.router_training import claim_labels, train_router
from longshort.router_model import RouterFileError
from longshort.runner import Hosted, orchestrator

TINY_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def problems(count: int, start: int = 0) -> list[Problem]:
    return [Problem(f"t{i}", f"x={i % 10}.\nop1: +{i % 7}.\nFind x modulo m=10.", "7", "unit", "synthetic")
            for i in range(start, start + count)]


@pytest.fixture
def config(tmp_path):
    return override(load_config(TINY_CONFIG), {"scoring.rollouts": 2, "scoring.router_turns": 3,
                                               "solve.router_path": str(tmp_path / "router"),
                                               "router_training.window": 8, "router_training.steps": 150,
                                               "router_training.heldout_share": 0.3})


def calls(hosted) -> int:
    return sum(len(agent.requests) for agent in hosted.agents.values())


def test_labels_from_the_gold_mc_router_train_a_router_that_repeats_its_decisions(config, scripted_pair, tmp_path):
    out = tmp_path / "router"
    record = train_router(config, scripted_pair, problems(10), log=lambda *_: None)
    # every scripted solve meets the same three decisions: none (nothing changes the answer yet), long (both chunks
    # make the rollouts right, the long one is shorter), none (already right)
    labels = [json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines()]
    assert len(labels) == 30 and [r["label"] for r in labels if r["problem"] == "t0"] == ["none", "long", "none"]
    assert record["labels"] | {"router": "mc-oracle", "problems": 10, "heldout_problems": 3, "states": 30} == record["labels"]
    held = record["heldout"]
    assert held["states"] == 9 and held["commonest"] == "none" and held["commonest_agreement"] == pytest.approx(2 / 3, abs=1e-4)
    assert held["agreement"] == 1.0
    assert json.loads((out / "router.json").read_text())["heldout"] == held

    learned = orchestrator(config, scripted_pair, mode_table(config, "learned/unfold")["learned/unfold"])
    (t,) = learned.solve(problems(1, start=50))
    assert [u.agent for u in t.turns] == ["long", "long", "short", "long"]  # the oracle's turns, without its key
    assert learned.router.stats == {"decisions": 3, "long": 1, "short": 0, "fallback": 2}
    assert learned.stats["router_requests"] == 0

    before = calls(scripted_pair)
    assert train_router(config, scripted_pair, problems(10), log=lambda *_: None)["heldout"] == held
    assert calls(scripted_pair) == before  # a rerun labels nothing again


def test_a_killed_labelling_resumes_with_each_decision_once(config, scripted_pair, tmp_path):
    out = tmp_path / "router"
    train_router(config, scripted_pair, problems(6), log=lambda *_: None)
    solved = (out / "label-transcripts.jsonl").read_text().splitlines()
    (out / "label-transcripts.jsonl").write_text("\n".join(solved[:-1]) + "\n")  # the last problem never finished
    with open(out / "labels.jsonl", "a") as f:
        f.write('{"problem": "t5", "sam')  # killed mid-write
    before = calls(scripted_pair)
    record = train_router(config, scripted_pair, problems(6), log=lambda *_: None)
    assert 0 < calls(scripted_pair) - before and record["labels"]["states"] == 18
    assert all(json.loads(line) for line in (out / "labels.jsonl").read_text().splitlines())


def test_labels_of_another_tokenizer_or_protocol_are_refused_with_the_file_named(config, scripted_pair, tmp_path):
    train_router(config, scripted_pair, problems(4), log=lambda *_: None)
    p = scripted_pair.protocol
    swapped = Hosted(scripted_pair.agents, scripted_pair.tokenizer,
                     Protocol({**p.ids, "handback": p.ids["summary_open"], "summary_open": p.ids["handback"]}))
    with pytest.raises(RouterFileError, match=f"{tmp_path / 'router' / 'labels.jsonl'}: labels from another "
                                              "tokenizer or protocol"):
        claim_labels(config, swapped, tmp_path / "router", overwrite=False)
    other = override(config, {"scoring.rollouts": 3})
    with pytest.raises(ValueError, match=r"holds a router-labelling run with other settings \(scoring.rollouts: 2 -> 3\): "
                                         "pass --overwrite"):
        train_router(other, scripted_pair, problems(4), log=lambda *_: None)
