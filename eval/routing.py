"""The routers compared on held-out problems after cold-start, one table and the targets (BENCHMARKS.md):

    python eval/routing.py --config configs/tiny.yaml --limit 200 --output runs/routing     (make routing)

With the agents of ``router_training.agents`` (the cold-start run), the learned router is trained first where
``solve.router_path`` lacks it (``longshort train-router``: resumable, and a no-op for labelling once done); then
the held-out tiny-world problems are solved under ``handoff``, ``mc`` (gold-free), ``learned``, and
``mc-oracle``, which reads the answer key and is the upper bound, into the run folder (resumable, with
``report.md`` and ``report.html``). The targets: ``learned`` at least as accurate as ``handoff`` with 15% fewer
long-model tokens and at most 1.2× its wall time per problem; ``mc`` recovering at least half of the oracle's
accuracy gain over ``handoff``. A few seconds of wall time on a shared machine are noisy, so the wall-time target
is judged on the median of ``--repeats`` further solves of ``handoff`` and ``learned``, taken in turns.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

MODES = "handoff/unfold,mc/unfold,learned/unfold,mc-oracle/unfold"


def median_seconds(config, hosted, problems, modes: list[str], repeats: int) -> dict[str, float]:
    """Per mode, the median wall time per problem over ``repeats`` solves of ``problems``, the modes in turns."""
    import statistics
    import time

    from longshort.eval.modes import mode_table
    from longshort.runner import orchestrator

    table, seconds = mode_table(config, ",".join(modes)), {mode: [] for mode in modes}
    for _ in range(repeats):
        for mode in modes:
            orch = orchestrator(config, hosted, table[mode])
            began = time.perf_counter()
            orch.solve(problems)
            seconds[mode].append((time.perf_counter() - began) / len(problems))
    return {mode: statistics.median(found) for mode, found in seconds.items()}


def targets(results: dict, seconds: dict[str, float]) -> dict:
    """The targets, each with the figures it was judged on."""
    handoff, mc, learned, oracle = (results[m] for m in MODES.split(","))
    fewer_long = 1 - learned["long_tokens"] / handoff["long_tokens"] if handoff["long_tokens"] else None
    time_ratio = seconds["learned/unfold"] / seconds["handoff/unfold"]
    gain = oracle["pass@1"] - handoff["pass@1"]
    recovered = (mc["pass@1"] - handoff["pass@1"]) / gain if gain > 0 else None
    return {
        "learned_accuracy_at_least_handoff": {"learned": learned["pass@1"], "handoff": handoff["pass@1"],
                                              "met": learned["pass@1"] >= handoff["pass@1"]},
        "learned_long_tokens_15pct_fewer": {"fewer": fewer_long, "met": fewer_long is not None and fewer_long >= 0.15},
        "learned_wall_time_at_most_1.2x": {"median_s": seconds, "ratio": time_ratio, "met": time_ratio <= 1.2},
        "mc_recovers_half_the_oracle_gain": {"oracle_gain": gain, "recovered": recovered,
                                             "met": recovered is not None and recovered >= 0.5},
    }


def main(argv: list[str] | None = None) -> int:
    from longshort.config import load_config
    from longshort.data.benchmarks import load_benchmark
    from longshort.eval.modes import mode_table
    from longshort.eval.report import markdown_table
    from longshort.eval.run_benchmarks import evaluate
    from longshort.rl.experience import training_problems
    from longshort.rl.router_training import labelling_config, train_router
    from longshort.runner import start

    p = argparse.ArgumentParser(prog="eval/routing.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/tiny.yaml")
    p.add_argument("--limit", type=int, default=200, help="held-out problems")
    p.add_argument("--output", default="runs/routing", help="run folder; an existing one is resumed")
    p.add_argument("--repeats", type=int, default=5, help="solves of handoff and learned timed for the wall-time target")
    args = p.parse_args(argv)

    config = labelling_config(load_config(args.config))
    if config.tiny is None:
        raise ValueError(f"{args.config}: the comparison runs on the tiny world's held-out problems (no 'tiny' section)")
    hosted = start(config, use_ray=False)
    if not (Path(config.solve.router_path) / "router.json").is_file():
        train_router(config, hosted, training_problems(config)[: config.router_training.problems])
    problems = {"synthetic": load_benchmark("synthetic", limit=args.limit, tiny=config.tiny)}
    out = Path(args.output)
    summary = evaluate(config, problems, mode_table(config, MODES), out, hosted,
                       command={"routing": args.config, "limit": args.limit})
    seconds = median_seconds(config, hosted, problems["synthetic"], ["handoff/unfold", "learned/unfold"], args.repeats)
    found = targets(summary["results"]["synthetic"], seconds)
    router = json.loads((Path(config.solve.router_path) / "router.json").read_text())
    (out / "targets.json").write_text(json.dumps({"targets": found, "router_heldout": router["heldout"]}, indent=2))
    print(markdown_table(summary))
    print(f"\nlearned router: held-out agreement with the gold mc decision {router['heldout']['agreement']:.1%} "
          f"(always '{router['heldout']['commonest']}': {router['heldout']['commonest_agreement']:.1%})")
    for name, figures in found.items():
        shown = ", ".join(f"{k} {json.dumps(v) if isinstance(v, dict) else v if v is None else round(v, 4)}"
                          for k, v in figures.items() if k != "met")
        print(f"{'met   ' if figures['met'] else 'missed'} {name}: {shown}")
    print(f"\nreports in {out}: summary.json, report.md, report.html, targets.json", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
