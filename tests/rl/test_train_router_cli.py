"""`longshort train-router` and the routers it serves, with the tiny models: the learned router trains, routes
`longshort solve`, and is refused by name when it does not fit; poisoned answers change no gold-free solve."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def longshort(*args: str):
    return subprocess.run([sys.executable, "-m", "longshort.cli", *args], capture_output=True, text=True, cwd=REPO)


def test_a_trained_router_solves_without_the_answer_key_and_a_wrong_one_is_refused(tiny_yaml, tiny_config, tmp_path):
    router = tmp_path / "router"
    config = tiny_yaml({"scoring": {"rollouts": 2, "router_turns": 2}, "solve": {"router_path": str(router)},
                        "router_training": {"agents": None, "problems": 6, "heldout_share": 0.34, "steps": 40}})
    trained = longshort("train-router", "--config", config)
    assert trained.returncode == 0, trained.stderr
    assert "held-out agreement with the gold mc decision" in trained.stdout
    record = json.loads((router / "router.json").read_text())
    assert record["labels"]["problems"] == 6 and record["heldout"]["states"] > 0

    rows = [json.loads(line) for line in open(Path(tiny_config.tiny.out_dir) / "heldout.jsonl")][:3]
    for name, answer in (("gold", None), ("poisoned", "wrong")):
        (tmp_path / name).mkdir()
        (tmp_path / name / "in.jsonl").write_text("".join(
            json.dumps({"id": r["id"], "question": r["question"], "answer": answer or r["answer"]}) + "\n" for r in rows))
        for mode in ("mc", "learned"):
            solved = longshort("solve", "--config", config, "--no-ray", "--router", mode, "--input",
                               str(tmp_path / name / "in.jsonl"), "--output", str(tmp_path / name / f"{mode}.jsonl"))
            assert solved.returncode == 0, solved.stderr
    for mode in ("mc", "learned"):
        gold, poisoned = (sorted((json.loads(line) for line in (tmp_path / name / f"{mode}.jsonl").read_text()
                                  .splitlines()), key=lambda t: t["problem"]["id"]) for name in ("gold", "poisoned"))
        assert [written(t) for t in gold] == [written(t) for t in poisoned] and len(gold) == 3
        for g, p in zip(gold, poisoned):  # the same tokens; their log-probs up to float noise between batches
            assert [u["logprobs"] for u in g["turns"]] == [pytest.approx(u["logprobs"], abs=1e-4) for u in p["turns"]]
        assert all(t["router"] == mode for t in gold)

    (router / "router.json").write_text(json.dumps(record | {"fingerprint": "0" * 16}))
    refused = longshort("solve", "--config", config, "--no-ray", "--router", "learned", "x=3.\nop1: +4.\nFind x modulo m=10.")
    assert refused.returncode == 2
    assert f"{router / 'router.json'}: trained for another tokenizer or protocol" in refused.stderr


def written(transcript: dict) -> list[dict]:
    """A transcript's turns but their log-probs: who wrote what, and why each turn stopped."""
    return [{key: value for key, value in turn.items() if key != "logprobs"} for turn in transcript["turns"]]
