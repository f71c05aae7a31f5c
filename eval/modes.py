"""Modes: each agent alone, and the pair under a router and a memory policy; one table, driven by the config.

A mode is a solve config. ``long`` and ``short`` are the single-model baselines (that agent writes every turn,
unfolded); ``longshort`` expands to every router × memory policy of the config's ``eval`` section; a pair mode can
also be named alone, as ``handoff/fold-append``. A transcript records its router and memory policy, so the mode it
was solved in is read back from it (``mode_of``), which is how a report is built from any transcripts file. A mode
whose router reads the answer key (``mc-oracle``) is labelled so in every table (``mode_label``).
"""
from __future__ import annotations

from pathlib import Path

from longshort.config import Config, SolveConfig

SOLO_MODES = ("long", "short")


def mode_name(router: str, memory: str) -> str:
    """``long`` / ``short`` for an agent alone (unfolded), else ``router/memory``."""
    return router if router in SOLO_MODES and memory == "unfold" else f"{router}/{memory}"


def mode_of(transcript) -> str:
    return mode_name(transcript.router, transcript.memory)


def reads_answer_key(mode: str) -> bool:
    """Whether the mode's router grades lookahead against the gold answer (``mc-oracle``): an upper bound, not a
    method, so every table labels its rows (``mode_label``)."""
    from longshort.routers import ROUTERS

    router = mode.split("/", 1)[0]
    return router in ROUTERS and ROUTERS[router].reads_answer_key


def mode_label(mode: str) -> str:
    """The mode as tables show it: marked when it reads the answer key."""
    return f"{mode} (reads answer key)" if reads_answer_key(mode) else mode


ANSWER_KEY_NOTE = ("Modes marked (reads answer key) route by grading lookahead rollouts against the gold answer: "
                   "an oracle upper bound that no inference mode can use, not a comparable method.")


def solve_config(config: Config, router: str, memory: str) -> SolveConfig:
    """The config's solve section with this router and memory policy, checked as a config key is."""
    data = config.solve.model_dump()
    data["router"], data["memory"]["policy"] = router, memory
    return SolveConfig.model_validate(data)


def mode_table(config: Config, names: str = "long,short,longshort") -> dict[str, SolveConfig]:
    """Mode name -> solve config for a comma-separated list of modes."""
    table = {}
    for name in [m.strip() for m in names.split(",") if m.strip()]:
        if name in SOLO_MODES:
            pairs = [(name, "unfold")]
        elif name == "longshort":
            pairs = [(r, p) for r in config.eval.routers for p in config.eval.policies]
        elif "/" in name:
            pairs = [tuple(name.split("/", 1))]
        else:
            raise ValueError(f"unknown mode '{name}': use long, short, longshort or router/policy")
        for router, memory in pairs:
            try:
                table[mode_name(router, memory)] = solve_config(config, router, memory)
            except ValueError as e:
                raise ValueError(f"mode '{name}': {e}") from None
    if not table:
        raise ValueError(f"no mode named in '{names}': use long, short, longshort or router/policy")
    return table


def mode_file(mode: str) -> str:
    """The file a mode's transcripts go to (``handoff/fold-append`` -> ``handoff+fold-append.jsonl``)."""
    return f"{mode.replace('/', '+')}.jsonl"


def transcript_file(run: Path, benchmark: str, mode: str) -> Path:
    """Where a benchmark run keeps one benchmark × mode's transcripts."""
    return Path(run) / "transcripts" / benchmark / mode_file(mode)
