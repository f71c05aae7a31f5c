"""The per-label summary of importance scores (eval/importance_labels.py), on hand-written records."""
from __future__ import annotations

import json

import pytest

from longshort.eval.importance_labels import main, scores_by_label


def _chunk(score: float, status: str = "scored") -> dict:
    return {"status": status, "score": score, "delta": score} if status == "scored" else {"status": status}


def test_scores_are_grouped_by_label_and_past_context_thoughts_left_out():
    records = [{"id": "a", "chunks": [_chunk(0.5), _chunk(0.0), _chunk(0.25, "past_context")]},
               {"id": "b", "chunks": [_chunk(0.75), _chunk(-0.125)]},
               {"id": "unlabelled", "chunks": [_chunk(1.0)]}]
    labels = {"a": ["step", "check", "step"], "b": ["step", "detour"]}
    grouped = scores_by_label(records, labels)
    assert {label: [c["score"] for c in chunks] for label, chunks in grouped.items()} == {
        "step": [0.5, 0.75], "check": [0.0], "detour": [-0.125]}


def test_a_trace_chunked_otherwise_than_its_paragraphs_is_named():
    with pytest.raises(ValueError, match="trace a: 1 scored thoughts but 2 labelled paragraphs"):
        scores_by_label([{"id": "a", "chunks": [_chunk(0.5)]}], {"a": ["step", "check"]})


def test_the_command_prints_labels_highest_mean_first(tmp_path, capsys):
    traces = tmp_path / "traces.jsonl"
    traces.write_text(json.dumps({"id": "a", "chunks": [{"label": "check"}, {"label": "step"}, {"label": "step"}]}))
    scored = tmp_path / "scored.jsonl"
    scored.write_text(json.dumps({"id": "a", "chunks": [_chunk(0.0), _chunk(0.5), _chunk(0.25)]}))
    assert main(["--traces", str(traces), "--scored", str(scored)]) == 0
    rows = [line for line in capsys.readouterr().out.splitlines() if line.startswith(("| step", "| check"))]
    assert rows[0].startswith("| step | 2 | 0.375") and rows[1].startswith("| check | 1 | 0.000")
