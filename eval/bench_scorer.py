"""Prefix reuse in the importance scorer: the same traces scored with it on and off, in one run.

    python eval/bench_scorer.py --config configs/tiny.yaml --traces 100

Both runs host the scoring model in this process with identical seeds, so they do the same rollouts (the
script checks the scores agree); only prompt KV reuse differs. Printed: prompt tokens computed (prefill), wall
time, and the naive/reuse ratios. Off means every rollout encodes its whole prompt, as a backend without a cache
would.
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path


def score_once(config, inputs, reuse: bool, output: Path) -> dict:
    from longshort.agents.actor import start_agents
    from longshort.importance import score_file
    from longshort.runner import Hosted, load_shared_tokenizer

    agent = config.scoring.agent
    model = config.model(agent).model_copy(update={"prefix_reuse": reuse})
    tokenizer, protocol = load_shared_tokenizer(config)
    agents = start_agents({agent: model}, None)
    start = time.perf_counter()
    stats = score_file(config, Hosted(agents, tokenizer, protocol), inputs, output)
    return stats | {"wall_s": time.perf_counter() - start}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/tiny.yaml")
    parser.add_argument("--input", help="traces JSONL (default: the tiny world's held-out traces)")
    parser.add_argument("--traces", type=int, default=100, help="how many traces to score")
    parser.add_argument("--kind", default="synthetic", help="grader of lines without a kind")
    parser.add_argument("--output", help="write the figures here as JSON")
    args = parser.parse_args(argv)

    from longshort.config import load_config
    from longshort.data.tiny_world import build
    from longshort.importance import read_scoring_inputs

    config = load_config(args.config)
    if args.input is None:
        build(config, log=lambda message: print(message, file=sys.stderr))
    path = args.input or str(Path(config.tiny.out_dir) / "heldout_traces.jsonl")
    inputs = read_scoring_inputs(path, default_kind=args.kind)[: args.traces]
    runs, scores = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name, reuse in (("naive", False), ("reuse", True)):
            output = Path(tmp) / f"{name}.jsonl"
            runs[name] = score_once(config, inputs, reuse, output)
            scores[name] = [[c.get("score") for c in json.loads(line)["chunks"]] for line in open(output)]
    same = scores["naive"] == scores["reuse"]
    figures = {
        "traces": len(inputs),
        "rollouts_per_prefix": config.scoring.rollouts,
        "policy": config.scoring.policy,
        "same_scores": same,
        **{f"{name}_{key}": round(run[key], 2) for name, run in runs.items() for key in ("prefill_tokens", "wall_s")},
        "prefill_ratio": round(runs["naive"]["prefill_tokens"] / max(runs["reuse"]["prefill_tokens"], 1), 2),
        "wall_ratio": round(runs["naive"]["wall_s"] / runs["reuse"]["wall_s"], 2),
    }
    print(f"{'':8s} {'prefill tokens':>15s} {'wall s':>8s}")
    for name in runs:
        print(f"{name:8s} {runs[name]['prefill_tokens']:15,.0f} {runs[name]['wall_s']:8.2f}")
    print(f"ratio    {figures['prefill_ratio']:14.1f}x {figures['wall_ratio']:7.2f}x   "
          f"({len(inputs)} traces, K={config.scoring.rollouts}, {config.scoring.policy} policy; "
          f"scores {'identical' if same else 'DIFFER'})")
    if args.output:
        Path(args.output).write_text(json.dumps(figures, indent=2))
    return 0 if same else 1


if __name__ == "__main__":
    sys.exit(main())
