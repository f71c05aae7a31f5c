"""The Monte Carlo importance scorer on the tiny world, with the real tiny models."""
from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import pytest

from longshort.chunking import Chunk
from longshort.config import ScoringConfig
from longshort.eval.importance_labels import interval, scores_by_label, table
from longshort.importance import read_scoring_inputs, score_chunks, score_file
from longshort.rollouts import Estimate, hoeffding


def _chunks(*lengths: int) -> list[Chunk]:
    """Consecutive chunks of these token lengths (one character per token)."""
    chunks, at = [], 0
    for n in lengths:
        chunks.append(Chunk(at, at + n, at, at + n, "x" * n))
        at += n
    return chunks


def test_scores_are_gain_times_a_decay_in_the_context_with_hoeffding_intervals():
    scoring = ScoringConfig(rollouts=8, context_decay=0.01, confidence=0.9)
    estimates = [Estimate(2, 8), Estimate(6, 8), Estimate(5, 8), None]
    rows = score_chunks(estimates, _chunks(10, 30, 5), scoring)
    half = math.sqrt(math.log(2 / 0.1) / 16)
    assert hoeffding(8, 0.9) == pytest.approx(half)
    first, second, third = rows
    assert [r["context"] for r in rows] == [0, 10, 40], "the thinking tokens before each thought"
    assert first["delta"] == pytest.approx(0.5) and first["decay"] == 1.0 and first["score"] == pytest.approx(0.5)
    assert first["acc_interval"] == pytest.approx([0.75 - half, min(1.0, 0.75 + half)])
    assert first["delta_interval"] == pytest.approx([0.5 - math.sqrt(2) * half, min(1.0, 0.5 + math.sqrt(2) * half)])
    assert second["decay"] == pytest.approx(math.exp(-0.1)), "decays with its context (10), not its length (30)"
    assert second["score"] == pytest.approx(-0.125 * math.exp(-0.1)) and second["score"] < 0
    lo, hi = second["score_interval"]
    assert -1 <= lo < second["score"] < hi <= 1
    assert third["status"] == "past_context" and "score" not in third  # reported, not dropped


def test_the_same_gain_later_in_the_trace_scores_less_and_can_fall_below_the_split():
    from longshort.data.coldstart import split

    scoring = ScoringConfig(rollouts=8, context_decay=0.001)
    estimates = [Estimate(0, 8), Estimate(0, 8), Estimate(2, 8), Estimate(2, 8), Estimate(4, 8)]
    rows = score_chunks(estimates, _chunks(100, 100, 900, 100), scoring)
    early, late = rows[1], rows[3]
    assert early["delta"] == late["delta"] == pytest.approx(0.25)
    assert early["score"] == pytest.approx(0.25 * math.exp(-0.1))
    assert late["score"] == pytest.approx(0.25 * math.exp(-1.1))
    record = {"chunks": rows}
    # at a positive threshold the context decides: the early gain is long, the same gain 1,100 tokens in is not
    assert [agent for agent, _ in split(record, 0.1)] == ["long", "long", "short", "short"]
    # at 0 only the sign of ΔAcc counts, so δ has no effect on the split
    assert [agent for agent, _ in split(record, 0.0)] == ["long", "long", "short", "long"]


def test_rollouts_must_be_positive():
    with pytest.raises(ValueError, match="greater than or equal to 1"):
        ScoringConfig(rollouts=0)


@pytest.fixture(scope="module")
def hosted(tiny_config):
    from longshort.runner import start

    return start(tiny_config, use_ray=False)


@pytest.fixture(scope="module")
def labelled(tiny_config):
    """The first held-out traces with the generator's label for each paragraph."""
    path = Path(tiny_config.tiny.out_dir) / "heldout_traces.jsonl"
    rows = [json.loads(line) for line in open(path)][:80]
    return path, {row["id"]: [c["label"] for c in row["chunks"]] for row in rows}


def test_computation_steps_matter_more_than_checks_and_detours(tiny_config, hosted, labelled, tmp_path):
    path, labels = labelled
    inputs = read_scoring_inputs(path, default_kind="synthetic")[: len(labels)]
    stats = score_file(tiny_config, hosted, inputs, tmp_path / "scored.jsonl")
    records = [json.loads(line) for line in open(tmp_path / "scored.jsonl")]
    assert [r["id"] for r in records] == [i.problem.id for i in inputs]
    scores = scores_by_label(records, labels)
    summary = {label: interval([c["score"] for c in chunks]) for label, chunks in scores.items() if len(chunks) > 1}
    print(table(scores))
    print({label: [round(x, 3) for x in v] for label, v in summary.items()})
    for unimportant in ("check", "detour"):
        assert summary["step"][0] > summary[unimportant][2], summary
    # K rollouts share each prefix's prefill, and prefix i + 1 extends prefix i
    assert stats["naive_prefill_tokens"] >= 5 * stats["prefill_tokens"]


def test_continue_policy_reasons_on_from_the_prefix(tiny_config, hosted, labelled, tmp_path):
    path, labels = labelled
    config = tiny_config.model_copy(update={"scoring": tiny_config.scoring.model_copy(
        update={"policy": "continue", "rollouts": 4, "continue_tokens": 160})})
    inputs = read_scoring_inputs(path, default_kind="synthetic")[:16]
    score_file(config, hosted, inputs, tmp_path / "scored.jsonl")
    records = [json.loads(line) for line in open(tmp_path / "scored.jsonl")]
    start = statistics.fmean(r["acc0"] for r in records)
    worked = statistics.fmean(r["chunks"][-2]["acc"] for r in records)  # every step done, the conclusion not yet
    assert worked >= start + 0.15, (start, worked)  # with every step written the model only states the result


def _write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_a_null_gold_answer_is_refused_not_read_as_none(tmp_path):
    row = {"id": "t", "problem": "2+2?", "thinking": "4", "answer": None}
    with pytest.raises(ValueError, match=r"line 1: trace t: no gold answer"):
        read_scoring_inputs(_write(tmp_path / "traces.jsonl", [row]))


def test_score_cli_records_bad_items_and_resumes(tiny_config, tmp_path):
    from longshort.cli import main

    step = "op1: +1. 3+1=4."
    rows = [
        {"id": "good", "problem": "x=3.\nop1: +1.\nFind x modulo m=10.", "thinking": f"{step}\n\nSo x=4.", "answer": "4"},
        {"id": "no-gold", "problem": "x=3.\nop1: +1.\nFind x modulo m=10.", "thinking": step, "answer": " "},
        {"id": "too-long", "problem": "x=3.\nop1: +1.\nFind x modulo m=10.",
         "thinking": "\n\n".join([step] * 40), "answer": "4"},
    ]
    traces = _write(tmp_path / "traces.jsonl", rows)
    config = tmp_path / "tiny.yaml"
    text = Path(tiny_config.source).read_text().replace("  dtype: float32\n", "  dtype: float32\n  max_context: 300\n", 1)
    config.write_text(text.replace("../artifacts", str(Path(tiny_config.tiny.out_dir).parent)))
    out = tmp_path / "scored.jsonl"
    args = ["score", "--config", str(config), "--input", str(traces), "--output", str(out), "--kind", "synthetic",
            "--rollouts", "2", "--no-ray"]
    assert main(args) == 0
    records = {r["id"]: r for r in map(json.loads, open(out))}
    assert set(records) == {"good", "no-gold", "too-long"}
    assert "the gold answer is empty" in records["no-gold"]["skipped"]
    statuses = [c["status"] for c in records["too-long"]["chunks"]]
    assert statuses[0] == "scored" and statuses[-1] == "past_context" and len(statuses) == 40
    assert [c["status"] for c in records["good"]["chunks"]] == ["scored", "scored"]
    assert main(args) == 0  # a rerun finds everything done
    assert len(open(out).readlines()) == 3

    _write(traces, rows + [{"id": "empty", "problem": "x=1.", "thinking": "", "answer": "1"}])
    assert main(args) == 2  # names the file and line
    assert main(args[:-3] + ["--rollouts", "0", "--no-ray"]) == 2
