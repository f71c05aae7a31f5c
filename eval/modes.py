"""Modes: each agent alone, the pair under a router and a memory policy, and free-form baselines; one table, driven
by the config.

A mode is a solve config or a free-form model. ``long`` and ``short`` are the single-agent modes on the protocol
(that agent writes every turn, unfolded); ``longshort`` expands to every router × memory policy of the config's
``eval`` section; a pair mode can also be named alone, as ``handoff/fold-append``. ``free:NAME`` is a model answering
alone in its own text format (longshort/freeform.py): NAME is an entry of the config's ``baselines`` or an agent
whose model has ``format: text``; ``free`` expands to every baseline. A transcript records its router and memory
policy (``free:NAME`` for a free-form one), so the mode it was solved in is read back from it (``mode_of``), which
is how a report is built from any transcripts file. A mode whose router reads the answer key (``mc-oracle``) is
labelled so in every table (``mode_label``).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from longshort.config import Config, SolveConfig

SOLO_MODES = ("long", "short")
FREE = "free:"


@dataclass(frozen=True)
class FreeMode:
    """A model answering alone in its own text format: an agent (``long`` | ``short``) or a baseline's name."""

    model: str

    @property
    def router(self) -> str:
        return FREE + self.model


def mode_name(router: str, memory: str) -> str:
    """``long`` / ``short`` for an agent alone (unfolded), ``free:NAME`` for a free-form model, else
    ``router/memory``."""
    if router.startswith(FREE) or router in SOLO_MODES and memory == "unfold":
        return router
    return f"{router}/{memory}"


def mode_of(transcript) -> str:
    return mode_name(transcript.router, transcript.memory)


def mode_fields(mode: str) -> dict:
    """What summary.json records of a mode, read back from its name (``mode_name``'s inverse: a name without a
    policy is unfolded)."""
    router, _, memory = mode.partition("/")
    return {"router": router, "memory": memory or "unfold", "reads_answer_key": reads_answer_key(mode)}


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


def free_mode(config: Config, model: str) -> FreeMode:
    """``free:model``, checked: a baseline, or an agent whose model answers in its own text format."""
    if model in config.baselines or model in SOLO_MODES and config.model(model).format == "text":
        return FreeMode(model)
    if model in SOLO_MODES:
        raise ValueError(f"mode 'free:{model}': the {model} model speaks the protocol (format: protocol); free-form "
                         "modes are for models in their own text format")
    known = [f"free:{name}" for name in config.baselines] or ["none: add a baselines section"]
    raise ValueError(f"unknown free-form model '{model}'; known: {', '.join(known)}")


def mode_table(config: Config, names: str = "long,short,longshort") -> dict[str, SolveConfig | FreeMode]:
    """Mode name -> solve config (or free-form model) for a comma-separated list of modes."""
    table: dict[str, SolveConfig | FreeMode] = {}
    for name in [m.strip() for m in names.split(",") if m.strip()]:
        if name == "free" or name.startswith(FREE):
            for model in config.baselines if name == "free" else [name[len(FREE):]]:
                table[FREE + model] = free_mode(config, model)
            continue
        if name in SOLO_MODES:
            pairs = [(name, "unfold")]
        elif name == "longshort":
            pairs = [(r, p) for r in config.eval.routers for p in config.eval.policies]
        elif "/" in name:
            pairs = [tuple(name.split("/", 1))]
        else:
            raise ValueError(f"unknown mode '{name}': use long, short, longshort, router/policy, free or free:NAME")
        for router, memory in pairs:
            try:
                table[mode_name(router, memory)] = solve_config(config, router, memory)
            except ValueError as e:
                raise ValueError(f"mode '{name}': {e}") from None
    if not table:
        raise ValueError(f"no mode named in '{names}': use long, short, longshort or router/policy")
    return table


def mode_file(mode: str) -> str:
    """The file a mode's transcripts go to (``handoff/fold-append`` -> ``handoff+fold-append.jsonl``, ``free:r1`` ->
    ``free-r1.jsonl``)."""
    return f"{mode.replace('/', '+').replace(':', '-')}.jsonl"


def transcript_file(run: Path, benchmark: str, mode: str) -> Path:
    """Where a benchmark run keeps one benchmark × mode's transcripts."""
    return Path(run) / "transcripts" / benchmark / mode_file(mode)
