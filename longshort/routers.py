"""Routers decide who writes the next chunk. Each is one registered class; adding a router touches one file.

- ``long`` / ``short``: one agent writes everything (the single-model baselines).
- ``alternate``: strict turn-taking, the long agent first.
- ``handoff`` (Long⊗Short): the long agent writes a thought, the short agent carries on until it emits the
  hand-back tag, then the long agent writes the next thought.
"""
from __future__ import annotations

from longshort.transcript import Transcript

ROUTERS: dict[str, type["Router"]] = {}


def router(name: str):
    def register(cls):
        ROUTERS[name] = cls
        cls.name = name
        return cls

    return register


class Router:
    name: str

    def __init__(self, protocol, **options):
        self.protocol = protocol

    def next_agent(self, transcript: Transcript) -> str:
        raise NotImplementedError


def _last_thinker(transcript: Transcript) -> str | None:
    return next((t.agent for t in reversed(transcript.turns) if t.kind == "think"), None)


@router("long")
class LongOnly(Router):
    def next_agent(self, transcript):
        return "long"


@router("short")
class ShortOnly(Router):
    def next_agent(self, transcript):
        return "short"


@router("alternate")
class Alternate(Router):
    def next_agent(self, transcript):
        return "short" if _last_thinker(transcript) == "long" else "long"


@router("handoff")
class Handoff(Router):
    def next_agent(self, transcript):
        last = next((t for t in reversed(transcript.turns) if t.kind == "think"), None)
        if last is None or last.agent == "short" and last.token_ids[-1:] == [self.protocol.ids["handback"]]:
            return "long"
        return "short"


def make_router(name: str, protocol, **options) -> Router:
    if name not in ROUTERS:
        raise ValueError(f"unknown router '{name}'; known: {', '.join(sorted(ROUTERS))}")
    return ROUTERS[name](protocol, **options)
