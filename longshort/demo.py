"""Modes side by side: each agent alone, and the pair under every router × memory policy.

`make demo` builds the tiny world if it is missing, hosts both agents on a local Ray, solves held-out synthetic
problems in every mode, prints one table and writes the transcripts and the table under ``runs/demo``.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from longshort.config import Config, SolveConfig, load_config
from longshort.memory import POLICIES
from longshort.problem import Problem

SOLO_MODES = ("long", "short")
PAIR_ROUTERS = ("alternate", "handoff", "mc")


def modes(config: Config, solo=SOLO_MODES, routers=PAIR_ROUTERS, policies=tuple(POLICIES)) -> dict[str, SolveConfig]:
    """Mode name -> solve config: the solo baselines, then every router × memory policy."""
    base = config.solve
    table = {name: base.model_copy(update={"router": name, "memory": base.memory.model_copy(update={"policy": "unfold"})})
             for name in solo}
    for router in routers:
        for policy in policies:
            memory = base.memory.model_copy(update={"policy": policy})
            table[f"{router}/{policy}"] = base.model_copy(update={"router": router, "memory": memory})
    return table


def mode_file(mode: str) -> str:
    """The file a mode's transcripts go to (``handoff/fold-append`` -> ``handoff+fold-append.jsonl``)."""
    return f"{mode.replace('/', '+')}.jsonl"


def transcript_file(run: Path, benchmark: str, mode: str) -> Path:
    """Where a benchmark run keeps one benchmark × mode's transcripts."""
    return Path(run) / "transcripts" / benchmark / mode_file(mode)


def summarize(transcripts) -> dict:
    from longshort.eval.metrics import correct

    n = len(transcripts)
    mean = lambda values: sum(values) / n if n else 0.0  # noqa: E731
    return {
        "problems": n,
        "accuracy": mean([correct(t) for t in transcripts]),
        "answered": mean([t.stop_reason == "answered" for t in transcripts]),
        "long_tokens": mean([t.tokens("long") for t in transcripts]),
        "short_tokens": mean([t.tokens("short") for t in transcripts]),
        "folds": mean([t.folds for t in transcripts]),
        "peak_context": mean([t.peak_context for t in transcripts]),
    }


def run_modes(config: Config, hosted, problems: list[Problem], mode_table: dict[str, SolveConfig],
              out_dir: Path, log=print) -> dict[str, dict]:
    from longshort.runner import orchestrator, solve_file
    from longshort.transcript import Transcript

    rows = {}
    for name, solve in mode_table.items():
        orch = orchestrator(config, hosted, solve)
        output = out_dir / mode_file(name)
        start = time.perf_counter()
        solve_file(orch, problems, output)
        seconds = time.perf_counter() - start
        wanted = {p.id for p in problems}
        transcripts = [Transcript.from_dict(json.loads(line)) for line in open(output)]
        rows[name] = summarize([t for t in transcripts if t.problem.id in wanted]) | {
            "wall_s": round(seconds, 2),
            "orchestrator_share": round(1 - orch.stats["backend_s"] / orch.stats["wall_s"], 4)
            if orch.stats["wall_s"] else None,
        }
    log(format_table(rows))
    (out_dir / "summary.json").write_text(json.dumps(rows, indent=2))
    return rows


def _percent(share: float | None) -> str:
    return "-" if share is None else f"{share:.1%}"


def format_table(rows: dict[str, dict]) -> str:
    head = f"{'mode':28s} {'accuracy':>8s} {'answered':>8s} {'long tok':>8s} {'short tok':>9s} {'folds':>6s} {'peak ctx':>8s} {'wall s':>7s} {'orch %':>6s}"
    lines = [head, "-" * len(head)]
    for name, r in rows.items():
        lines.append(f"{name:28s} {r['accuracy']:8.1%} {r['answered']:8.1%} {r['long_tokens']:8.1f} "
                     f"{r['short_tokens']:9.1f} {r['folds']:6.2f} {r['peak_context']:8.1f} {r['wall_s']:7.1f} "
                     f"{_percent(r.get('orchestrator_share')):>6s}")
    return "\n".join(lines)


def evaluate(config: Config, limit: int, out: Path, routers: tuple[str, ...], policies: tuple[str, ...]) -> dict:
    """Each agent alone and the pair under ``routers`` × ``policies`` on ``limit`` held-out synthetic problems,
    both agents in this process (the before/after tables of the training stages)."""
    from longshort.runner import start

    table = modes(config, routers=routers, policies=policies)
    return run_modes(config, start(config, use_ray=False), heldout(config, limit), table, out)


def heldout(config: Config, limit: int | None) -> list[Problem]:
    rows = [json.loads(line) for line in open(Path(config.tiny.out_dir) / "heldout.jsonl")]
    return [Problem.from_dict(r) for r in rows[:limit]]


def run_demo(config_path: str, limit: int = 100, use_ray: bool = True, out_dir: str = "runs/demo") -> dict:
    """Results go under ``out_dir/<tiny world hash>``, so a rerun resumes and a rebuilt world starts afresh."""
    from longshort.data.tiny_world import build, stamp_of
    from longshort.runner import start

    config = load_config(config_path)
    build(config)
    hosted = start(config, use_ray)
    out = Path(out_dir) / stamp_of(config.tiny, config.protocol)["hash"]
    return run_modes(config, hosted, heldout(config, limit), modes(config), out)
