"""Accuracy against tokens and speed, per benchmark and mode, in one table (also ``longshort eval``).

    python eval/run_benchmarks.py --config configs/tiny.yaml --benchmarks math500,gsm8k,synthetic \\
        --modes long,short,longshort --n 4 --output runs/NAME [--data DIR] [--limit 20]

Modes: ``long`` and ``short`` alone, and ``longshort``: the pair under every router × memory policy of the config's
``eval`` section (or name one, as ``handoff/fold-append``). Each sample's transcript is appended to
``runs/NAME/transcripts/<benchmark>/<mode>.jsonl`` as it finishes, so a killed run resumes where it stopped with
no duplicate; then ``summary.json``, ``report.md``, the plots and ``report.html`` are written from the transcripts.
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="longshort eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/tiny.yaml")
    p.add_argument("--benchmarks", default="synthetic",
                   help="comma-separated: math500,aime24,aime25,amc23,gpqa_diamond,gsm8k,synthetic")
    p.add_argument("--modes", default="long,short,longshort", help="long, short, longshort, or router/policy")
    p.add_argument("--n", type=int, default=1, help="samples per problem")
    p.add_argument("--output", required=True, help="run folder; an existing one is resumed")
    p.add_argument("--data", help="folder with <benchmark>.jsonl files (default: the Hugging Face hub)")
    p.add_argument("--limit", type=int, help="first N problems of each benchmark")
    p.add_argument("--temperature", type=float, help="override sampling.temperature")
    p.add_argument("--top-p", type=float, help="override sampling.top_p")
    p.add_argument("--max-tokens", type=int, help="override solve.max_long_tokens and solve.max_short_tokens")
    p.add_argument("--no-ray", action="store_true", help="host both models in this process")
    return p


def with_overrides(config, args):
    """The config with the command line's sampling and budget overrides, validated like the file."""
    from longshort.config import Config

    data = config.model_dump()
    for key, value in (("temperature", args.temperature), ("top_p", args.top_p)):
        if value is not None:
            data["sampling"][key] = value
    if args.max_tokens is not None:
        data["solve"]["max_long_tokens"] = data["solve"]["max_short_tokens"] = args.max_tokens
    return Config.model_validate(data)


def mode_table(config, text: str) -> dict:
    from longshort.demo import SOLO_MODES, modes
    from longshort.routers import ROUTERS

    table = {}
    for name in [m.strip() for m in text.split(",") if m.strip()]:
        if name in SOLO_MODES:
            table |= modes(config, solo=(name,), routers=())
        elif name == "longshort":
            table |= modes(config, solo=(), routers=config.eval.routers, policies=config.eval.policies)
        elif "/" in name:
            router, policy = name.split("/", 1)
            table |= modes(config, solo=(), routers=(router,), policies=(policy,))
        else:
            raise ValueError(f"unknown mode '{name}': use long, short, longshort or router/policy")
    for name, solve in table.items():
        if solve.router not in ROUTERS:
            raise ValueError(f"mode '{name}': unknown router '{solve.router}'; known: {', '.join(sorted(ROUTERS))}")
        if solve.memory.policy not in ("unfold", "fold-restart", "fold-append"):
            raise ValueError(f"mode '{name}': unknown memory policy '{solve.memory.policy}'")
    return table


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("longshort", "torch", "transformers", "vllm", "ray"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def run(args) -> dict:
    from longshort.config import load_config
    from longshort.data.benchmarks import load_benchmark, names
    from longshort.demo import transcript_file
    from longshort.runner import orchestrator, solve_file, start

    config = with_overrides(load_config(args.config), args)
    benchmarks, table = names(args.benchmarks), mode_table(config, args.modes)
    if args.n < 1:
        raise ValueError(f"--n must be at least 1, got {args.n}")
    problems = {b: load_benchmark(b, args.data, args.limit, config.tiny) for b in benchmarks}
    out = Path(args.output)
    out.mkdir(parents=True, exist_ok=True)
    timing_path = out / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    hosted = start(config, use_ray=not args.no_ray)
    for benchmark in benchmarks:
        for mode, solve in table.items():
            output = transcript_file(out, benchmark, mode)
            began = time.perf_counter()
            new = solve_file(orchestrator(config, hosted, solve), problems[benchmark], output, samples=args.n,
                             desc=f"{benchmark} {mode}")
            spent = timing.setdefault(f"{benchmark}/{mode}", {"wall_s": 0.0, "tokens": 0})
            spent["wall_s"] += time.perf_counter() - began if new else 0.0
            spent["tokens"] += sum(t.tokens() for t in new)
            timing_path.write_text(json.dumps(timing, indent=2))
    transcripts = load_transcripts(out, table, problems, args.n)
    summary = summarize(out, config, args, table, transcripts, timing)
    from longshort.eval.report import write_reports

    write_reports(out, summary, transcripts, config)
    return summary


def load_transcripts(out: Path, table, problems, samples: int) -> dict:
    """benchmark -> mode -> the run's transcripts of this command's problems and samples, read once for the
    summary and the reports (a resumed folder may hold others)."""
    from longshort.demo import transcript_file
    from longshort.transcript import Transcript

    loaded = {}
    for benchmark, listed in problems.items():
        wanted = {(p.id, s) for p in listed for s in range(samples)}
        for mode in table:
            with open(transcript_file(out, benchmark, mode)) as f:
                every = [Transcript.from_dict(json.loads(line)) for line in f]
            loaded.setdefault(benchmark, {})[mode] = [t for t in every if (t.problem.id, t.sample) in wanted]
    return loaded


def summarize(out: Path, config, args, table, transcripts: dict, timing) -> dict:
    """summary.json: the config, the versions, the command and one metrics row per benchmark × mode."""
    from longshort.eval.metrics import mode_metrics

    results = {benchmark: {mode: mode_metrics(found, config.eval.pass_k, timing.get(f"{benchmark}/{mode}", {}))
                           for mode, found in modes.items()}
               for benchmark, modes in transcripts.items()}
    summary = {
        "config": config.model_dump(),
        "versions": versions(),
        "command": {k: v for k, v in vars(args).items() if k != "run"},
        "modes": {mode: {"router": s.router, "memory": s.memory.policy} for mode, s in table.items()},
        "results": results,
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary = run(args)
    from longshort.eval.report import markdown_table

    print(markdown_table(summary))
    print(f"\nreports in {args.output}: summary.json, report.md, report.html, plots/", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
