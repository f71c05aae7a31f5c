"""Accuracy against tokens and speed, per benchmark and mode, in one table (also ``longshort eval``).

    python eval/run_benchmarks.py --config configs/tiny.yaml --benchmarks math500,gsm8k,synthetic \\
        --modes long,short,longshort --n 4 --output runs/NAME [--data DIR] [--limit 20]

Modes (eval/modes.py): ``long`` and ``short`` alone, ``longshort``: the pair under every router × memory policy
of the config's ``eval`` section (or name one, as ``handoff/fold-append``), and free-form baselines, ``free:NAME``
(a model of the config's ``baselines``, or an agent in its own text format, answering alone; ``free``: every
baseline), so "the pair vs R1-Distill" is one command: ``--modes handoff/unfold,free:r1-distill``. Each sample's
transcript is appended to ``runs/NAME/transcripts/<benchmark>/<mode>.jsonl`` as it finishes, so a killed run resumes
where it stopped with no duplicate; then ``summary.json``, ``report.md``, the plots and ``report.html`` are written
from the transcripts.

The same library serves ``longshort demo`` (every mode on the tiny world's held-out problems), the before/after
tables of cold-start and RL (``heldout_results``), and ``longshort report`` (the reports of any transcripts
file, such as ``longshort solve``'s output).
"""
from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path


def build_parser() -> argparse.ArgumentParser:
    from longshort.config import at_least

    p = argparse.ArgumentParser(prog="longshort eval", description=__doc__.split("\n\n")[0])
    p.add_argument("--config", default="configs/tiny.yaml")
    p.add_argument("--benchmarks", default="synthetic",
                   help="comma-separated: math500,aime24,aime25,amc23,gpqa_diamond,gsm8k,synthetic")
    p.add_argument("--modes", default="long,short,longshort",
                   help="long, short, longshort, router/policy, free (every baseline) or free:NAME")
    p.add_argument("--n", type=at_least(1), default=1, help="samples per problem")
    p.add_argument("--output", required=True, help="run folder; an existing one of the same settings is resumed")
    p.add_argument("--data", help="folder with <benchmark>.jsonl files (default: the Hugging Face hub)")
    p.add_argument("--limit", type=at_least(1), help="first N problems of each benchmark")
    p.add_argument("--temperature", type=float, help="override sampling.temperature")
    p.add_argument("--top-p", type=float, help="override sampling.top_p")
    p.add_argument("--max-tokens", type=at_least(1), help="override solve.max_long_tokens and solve.max_short_tokens")
    p.add_argument("--no-ray", action="store_true", help="host both models in this process")
    return p


def with_overrides(config, args):
    """The config with the command line's sampling and budget overrides, validated like the file."""
    from longshort.config import override

    return override(config, {"sampling.temperature --temperature": args.temperature,
                             "sampling.top_p --top-p": args.top_p,
                             "solve.max_long_tokens --max-tokens": args.max_tokens,
                             "solve.max_short_tokens --max-tokens": args.max_tokens})


def versions() -> dict:
    from importlib.metadata import PackageNotFoundError, version

    found = {"python": platform.python_version()}
    for package in ("longshort", "torch", "transformers", "vllm", "ray"):
        try:
            found[package] = version(package)
        except PackageNotFoundError:
            pass
    return found


def evaluate(config, problems: dict, table: dict, out: Path, hosted, samples: int = 1,
             command: dict | None = None) -> dict:
    """Solve every benchmark × mode of ``problems`` (benchmark -> problems) and ``table`` (mode -> solve config)
    ``samples`` times into ``out``, skipping what it already holds; then summary.json and the reports. Returns the
    summary."""
    from longshort.eval.modes import transcript_file
    from longshort.eval.report import write_reports
    from longshort.runner import solve_file, solver

    out.mkdir(parents=True, exist_ok=True)
    timing_path = out / "timing.json"
    timing = json.loads(timing_path.read_text()) if timing_path.exists() else {}
    for benchmark, listed in problems.items():
        for mode, solve in table.items():
            orch = solver(config, hosted, solve)
            began = time.perf_counter()
            new = solve_file(orch, listed, transcript_file(out, benchmark, mode), samples=samples,
                             desc=f"{benchmark} {mode}")
            spent = timing.setdefault(f"{benchmark}/{mode}", {"wall_s": 0.0, "backend_s": 0.0, "tokens": 0})
            if new:
                spent["wall_s"] += time.perf_counter() - began
                spent["backend_s"] = spent.get("backend_s", 0.0) + orch.stats["backend_s"]
                spent["tokens"] += sum(t.tokens() for t in new)
                # model calls (the orchestrator's requests and a router's own) and the router's lookahead tokens
                for key, value in (("transcripts", len(new)), ("router_tokens", orch.stats["router_tokens"]),
                                   ("calls", orch.stats["requests"] + orch.stats["router_requests"])):
                    spent[key] = spent.get(key, 0) + value
            timing_path.write_text(json.dumps(timing, indent=2))
    transcripts = load_transcripts(out, table, problems, samples)
    summary = write_summary(out, config, command or {}, table, transcripts, timing)
    write_reports(out, summary, transcripts, config)
    return summary


def load_transcripts(out: Path, table, problems, samples: int) -> dict:
    """benchmark -> mode -> the run's transcripts of these problems and samples, read once for the summary and the
    reports (a resumed folder may hold others)."""
    from longshort.eval.modes import transcript_file
    from longshort.transcript import Transcript

    loaded = {}
    for benchmark, listed in problems.items():
        wanted = {(p.id, s) for p in listed for s in range(samples)}
        for mode in table:
            with open(transcript_file(out, benchmark, mode)) as f:
                every = [Transcript.from_dict(json.loads(line)) for line in f]
            loaded.setdefault(benchmark, {})[mode] = [t for t in every if (t.problem.id, t.sample) in wanted]
    return loaded


def write_summary(out: Path, config, command: dict, table, transcripts: dict, timing) -> dict:
    """summary.json: the config, the versions, the command, one metrics row per benchmark × mode, and the grader's
    counts (a timed-out grading counts as wrong, so a report says how many there were)."""
    from longshort.eval.metrics import mode_metrics
    from longshort.eval.modes import mode_fields
    from longshort.grader import grading_stats

    results = {benchmark: {mode: mode_metrics(found, config.eval.pass_k, timing.get(f"{benchmark}/{mode}", {}))
                           for mode, found in modes.items()}
               for benchmark, modes in transcripts.items()}
    summary = {
        "config": config.model_dump(),
        "versions": versions(),
        "command": command,
        "modes": {mode: mode_fields(mode) for mode in table},
        "results": results,
        "grading": grading_stats(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def heldout_benchmark(config) -> str:
    """The benchmark of the before/after tables: ``eval.heldout``, else the tiny world's held-out set."""
    if config.eval.heldout:
        return config.eval.heldout
    if config.tiny is not None:
        return "synthetic"
    raise ValueError(f"{config.source}: set eval.heldout (a benchmark such as gsm8k or math500, and eval.data for "
                     "an offline folder) to evaluate before and after, or pass --eval-limit 0")


def heldout_results(config, limit: int, out: Path, modes: str) -> dict:
    """Mode -> metrics row on the first ``limit`` problems of the held-out benchmark, sampled as configured, both
    agents in this process: the tiny world's build evaluates its models this way."""
    from longshort.eval.modes import mode_table
    from longshort.eval.report import markdown_table

    rows = _heldout(config, limit, out, mode_table(config, modes))
    print(markdown_table({"results": {heldout_benchmark(config): rows}}))
    return rows


def seed_table(rows: dict[int, dict]) -> str:
    """Each seed's held-out accuracy per mode (rows from ``heldout_results``), then their mean and range."""
    import statistics

    modes = list(next(iter(rows.values())))
    lines = ["| seed | " + " | ".join(f"{m} pass@1 | {m} tokens" for m in modes) + " |",
             "|---|" + "---:|---:|" * len(modes)]
    for seed, by_mode in rows.items():
        lines.append(f"| {seed} | " + " | ".join(f"{by_mode[m]['pass@1']:.1%} | {by_mode[m]['tokens']:.1f}"
                                                for m in modes) + " |")
    for name, reduce, unit in (("mean", statistics.fmean, "%"), ("range", lambda v: max(v) - min(v), " pts")):
        cells = [f"{100 * reduce([r[m]['pass@1'] for r in rows.values()]):.1f}{unit} | "
                 f"{reduce([r[m]['tokens'] for r in rows.values()]):.1f}" for m in modes]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _heldout(config, limit: int, out: Path, table) -> dict:
    """Mode -> metrics row of ``table``'s modes on the first ``limit`` held-out problems, into ``out``."""
    from longshort.data.benchmarks import load_benchmark
    from longshort.runner import start

    benchmark = heldout_benchmark(config)
    problems = {benchmark: load_benchmark(benchmark, config.eval.data, limit, config.tiny)}
    return evaluate(config, problems, table, Path(out), start(config, use_ray=False))["results"][benchmark]


def stage_modes(config, pair_modes: list[str]) -> str:
    """The modes a before or after table holds: each agent alone, on the protocol once its model speaks it, else in
    its own text format (once per distinct model: long and short often start from one base), and the pair in
    ``pair_modes`` when both agents speak the protocol."""
    solo, text_paths = [], set()
    for agent in ("long", "short"):
        model = config.model(agent)
        if model.format == "protocol":
            solo.append(agent)
        elif model.path not in text_paths | {b.path for b in config.baselines.values()}:
            solo.append(f"free:{agent}")
            text_paths.add(model.path)
    protocol = all(config.model(agent).format == "protocol" for agent in ("long", "short"))
    return ",".join(dict.fromkeys(solo + (pair_modes if protocol else [])))


def before_after(before, after, limit: int, out: Path, pair_modes: list[str], log=print) -> dict:
    """The before/after tables of a training stage on the held-out benchmark (``eval.heldout``): ``stage_modes`` of
    each config, and the config's free-form baselines, which training does not change: solved once in the before
    run and carried into the after run, so each run folder's reports show them beside the pair."""
    from longshort.eval.modes import mode_table
    from longshort.eval.report import markdown_table

    baselines = mode_table(before, "free") if before.baselines else {}

    def table(config) -> dict:
        modes = stage_modes(config, pair_modes)  # empty when the baselines are the agents' own base models
        return (mode_table(config, modes) if modes else {}) | baselines

    rows = {"before": _heldout(before, limit, out / "before", table(before))}
    _carry(out / "before", out / "after", heldout_benchmark(before), baselines)
    rows["after"] = _heldout(after, limit, out / "after", table(after))
    for stage, found in rows.items():
        log(f"{stage}:\n" + markdown_table({"results": {heldout_benchmark(before): found}}))
    return rows


def _carry(source: Path, target: Path, benchmark: str, modes) -> None:
    """Copy ``modes``' transcripts and timing from one run folder to another, which then resumes them as done."""
    import shutil

    from longshort.eval.modes import transcript_file

    timing = json.loads((source / "timing.json").read_text()) if (source / "timing.json").exists() else {}
    carried = {}
    for mode in modes:
        transcript_file(target, benchmark, mode).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(transcript_file(source, benchmark, mode), transcript_file(target, benchmark, mode))
        if f"{benchmark}/{mode}" in timing:
            carried[f"{benchmark}/{mode}"] = timing[f"{benchmark}/{mode}"]
    target.mkdir(parents=True, exist_ok=True)
    kept = json.loads((target / "timing.json").read_text()) if (target / "timing.json").exists() else {}
    (target / "timing.json").write_text(json.dumps(kept | carried, indent=2))


def demo(config_path: str, limit: int = 100, use_ray: bool = True, out_dir: str = "runs/demo") -> dict:
    """`make demo`: build the tiny world if missing, then every mode on held-out problems, one table. Results go
    under ``out_dir/<hash of the run's settings>``, so a rerun resumes and a rebuilt world or an edited config
    starts afresh."""
    import hashlib

    from longshort.config import load_config
    from longshort.data.benchmarks import load_benchmark
    from longshort.data.tiny_world import build
    from longshort.eval.modes import mode_table
    from longshort.eval.report import markdown_table
    from longshort.runner import start
    from longshort.runs import claim

    config = load_config(config_path)
    build(config)
    table = mode_table(config)
    settings = run_settings(config, table, None)
    out = Path(out_dir) / hashlib.sha256(json.dumps(settings, sort_keys=True).encode()).hexdigest()[:12]
    problems = {"synthetic": load_benchmark("synthetic", limit=limit, tiny=config.tiny)}
    with claim(out, settings, "demo", folder=True):
        summary = evaluate(config, problems, table, out, start(config, use_ray),
                           command={"demo": config_path, "limit": limit})
    print(markdown_table(summary))
    print(f"\nreports in {out}: summary.json, report.md, report.html, plots/", file=sys.stderr)
    return summary


def report_from_transcripts(config, inputs: list[str], out: Path) -> dict:
    """summary.json and the reports of transcripts files (``longshort solve --output``, or any run's), grouped by
    the benchmark each problem came from and the mode each transcript records."""
    from longshort.eval.metrics import mode_metrics
    from longshort.eval.modes import mode_fields, mode_of
    from longshort.eval.report import write_reports
    from longshort.grader import grading_stats
    from longshort.jsonl import read_rows
    from longshort.transcript import Transcript

    def transcript(number: int, row: dict) -> Transcript:
        try:
            return Transcript.from_dict(row)
        except (KeyError, TypeError) as e:
            raise ValueError(f"not a transcript ({type(e).__name__}: {e})") from None

    transcripts: dict = {}
    for path in inputs:
        for t in read_rows(path, False, transcript):
            transcripts.setdefault(t.problem.source, {}).setdefault(mode_of(t), []).append(t)
    if not transcripts:
        raise ValueError(f"no transcripts in {', '.join(inputs)}")
    modes = dict.fromkeys(mode for by_mode in transcripts.values() for mode in by_mode)
    out.mkdir(parents=True, exist_ok=True)
    summary = {
        "config": config.model_dump(),
        "versions": versions(),
        "command": {"report": inputs},
        "modes": {mode: mode_fields(mode) for mode in modes},
        "results": {source: {mode: mode_metrics(found, config.eval.pass_k, {}) for mode, found in by_mode.items()}
                    for source, by_mode in transcripts.items()},
        "grading": grading_stats(),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    write_reports(out, summary, transcripts, config)
    return summary


def run_settings(config, table: dict, data: str | None) -> dict:
    """What a benchmark run's transcripts depend on, for its run record (longshort/runs.py): a solve's settings (the
    modes set the router and memory policy, each into its own file) and where the problems come from."""
    from longshort.runner import solve_settings

    settings = solve_settings(config, {solve.router for solve in table.values()})
    del settings["solve"]["router"], settings["solve"]["memory"]["policy"]
    settings["problems"] = {"data": str(Path(data).resolve()) if data else "hub",
                            "tiny": config.tiny.model_dump() if config.tiny else None}
    return settings


def run(args) -> dict:
    from longshort.config import load_config
    from longshort.data.benchmarks import load_benchmark, names
    from longshort.eval.modes import mode_table
    from longshort.runner import start
    from longshort.runs import claim

    config = with_overrides(load_config(args.config), args)
    benchmarks, table = names(args.benchmarks), mode_table(config, args.modes)
    problems = {b: load_benchmark(b, args.data, args.limit, config.tiny) for b in benchmarks}
    command = {k: v for k, v in vars(args).items() if k != "run"}
    with claim(args.output, run_settings(config, table, args.data), "eval", folder=True):
        return evaluate(config, problems, table, Path(args.output), start(config, use_ray=not args.no_ray), args.n,
                        command)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    summary = run(args)
    from longshort.eval.report import markdown_table

    print(markdown_table(summary))
    print(f"\nreports in {args.output}: summary.json, report.md, report.html, plots/", file=sys.stderr)
    return 0


if __name__ == "__main__":  # as `longshort eval`, with its one-line errors
    from longshort.cli import main as longshort

    sys.exit(longshort(["eval", *sys.argv[1:]]))
