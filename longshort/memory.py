"""Memory policies: how the context an agent sees next is rendered from the transcript.

- ``unfold``: the prompt and every turn so far.
- ``fold-restart`` (InftyThink): the prompt, the latest summary, the current segment.
- ``fold-append`` (Accordion): the prompt, every summary so far, the current segment. The context right after a
  fold is a prefix of the context after the next fold, so prefix caching keeps applying.

A summary turn closes a segment; the detail of closed segments leaves the context (and the KV cache).
"""
from __future__ import annotations

from typing import Callable

from longshort.transcript import Transcript, Turn

POLICIES: dict[str, Callable[[list[Turn]], list[Turn]]] = {}


def policy(name: str):
    def register(visible: Callable[[list[Turn]], list[Turn]]):
        POLICIES[name] = visible
        return visible

    return register


@policy("unfold")
def _everything(turns: list[Turn]) -> list[Turn]:
    return turns


@policy("fold-restart")
def _latest_summary(turns: list[Turn]) -> list[Turn]:
    summaries = [t for t in turns if t.kind == "summary"]
    return summaries[-1:] + _current_segment(turns)


@policy("fold-append")
def _all_summaries(turns: list[Turn]) -> list[Turn]:
    return [t for t in turns if t.kind == "summary"] + _current_segment(turns)


def _current_segment(turns: list[Turn]) -> list[Turn]:
    current = turns[-1].segment + (turns[-1].kind == "summary") if turns else 0
    return [t for t in turns if t.segment == current]


def render(transcript: Transcript, name: str | None = None) -> list[int]:
    """The token ids an agent is prompted with next under the transcript's own memory policy (or policy ``name``:
    the same turns seen another way)."""
    ids = list(transcript.prompt_ids)
    for turn in POLICIES[name or transcript.memory](transcript.turns):
        ids += turn.ids
    return ids
