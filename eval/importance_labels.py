"""Importance by label: how `longshort score` ranks the tiny world's chunks against the generator's labels.

    longshort score --config configs/tiny.yaml --input artifacts/tiny/heldout_traces.jsonl --kind synthetic \\
        --limit 200 --output runs/importance/heldout.jsonl
    python eval/importance_labels.py --traces artifacts/tiny/heldout_traces.jsonl --scored runs/importance/heldout.jsonl

The design intends key steps to score above checks, and checks above detours and hesitation. Each trace's thoughts
must be its generated paragraphs one for one (the tiny config's chunking does that); a trace scored otherwise is an
error naming it. Per label: thoughts, mean score with a 95% interval, mean ΔAcc, and the share scored long (S > 0).
"""
from __future__ import annotations

import argparse
import json
import math
import statistics
import sys


def scores_by_label(records: list[dict], labels: dict[str, list[str]]) -> dict[str, list[dict]]:
    """Label -> the scored chunks of that label, over every record whose trace carries labels (a chunk past the
    scoring model's context has no score and is left out)."""
    by_label: dict[str, list[dict]] = {}
    for record in records:
        if record["id"] not in labels or "chunks" not in record:
            continue
        expected = labels[record["id"]]
        if len(record["chunks"]) != len(expected):
            raise ValueError(f"trace {record['id']}: {len(record['chunks'])} scored thoughts but {len(expected)} "
                             "labelled paragraphs; score it with chunking that keeps one thought per paragraph")
        for chunk, label in zip(record["chunks"], expected):
            if chunk["status"] == "scored":  # not a prefix past the model's context
                by_label.setdefault(label, []).append(chunk)
    return by_label


def interval(values: list[float]) -> tuple[float, float, float]:
    """Mean and its 95% normal interval."""
    mean = statistics.fmean(values)
    half = 1.96 * statistics.stdev(values) / math.sqrt(len(values)) if len(values) > 1 else math.inf
    return mean - half, mean, mean + half


def table(by_label: dict[str, list[dict]]) -> str:
    lines = ["| label | thoughts | mean score (95% interval) | mean ΔAcc | scored long |", "|---|---:|---:|---:|---:|"]
    for label, chunks in sorted(by_label.items(), key=lambda kv: -statistics.fmean(c["score"] for c in kv[1])):
        low, mean, high = interval([c["score"] for c in chunks])
        delta = statistics.fmean(c["delta"] for c in chunks)
        long_share = sum(c["score"] > 0 for c in chunks) / len(chunks)
        lines.append(f"| {label} | {len(chunks)} | {mean:.3f} ({low:.3f} to {high:.3f}) | {delta:+.3f} | "
                     f"{long_share:.0%} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--traces", required=True, help="labelled traces (the tiny world's heldout_traces.jsonl)")
    parser.add_argument("--scored", required=True, help="`longshort score`'s output on them")
    args = parser.parse_args(argv)
    try:
        with open(args.traces) as f:
            labels = {row["id"]: [c["label"] for c in row["chunks"]] for row in map(json.loads, f)}
        with open(args.scored) as f:
            records = [json.loads(line) for line in f]
    except OSError as e:
        parser.error(f"cannot read {e.filename}: {e.strerror}")
    by_label = scores_by_label(records, labels)
    if not by_label:
        print(f"no trace of {args.scored} is in {args.traces}", file=sys.stderr)
        return 1
    print(table(by_label))
    return 0


if __name__ == "__main__":
    sys.exit(main())
