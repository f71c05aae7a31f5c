"""Memory policies: whether a transcript's segments are summarized, and how the context an agent sees next is
rendered from the transcript.

- ``unfold``: the prompt and every turn; nothing is summarized (plain long reasoning).
- ``unfold-summaries`` (Accordion-Thinking's Unfold): segments are summarized, and the context keeps everything,
  summaries included.
- ``fold-restart`` (InftyThink): the prompt, the latest summary, the current segment.
- ``fold-append`` (Accordion-Thinking's Fold): the prompt, every summary so far, the current segment. The context
  right after a fold is a prefix of the context after the next fold, so prefix caching keeps applying.

A summary turn closes a segment; under a folding policy the detail of closed segments leaves the context (and the
KV cache). The same transcript renders under any policy (``render(transcript, name)``), so Fold and Unfold of one
transcript differ only in rendering.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from longshort.transcript import Transcript, Turn


@dataclass(frozen=True)
class Policy:
    visible: Callable[[list[Turn]], list[Turn]]  # the turns the next context holds
    summarizes: bool  # segments are closed by summary turns
    folds: bool  # closed segments leave the context: a transcript trains as one sample per segment


POLICIES: dict[str, Policy] = {}


def policy(name: str, summarizes: bool, folds: bool):
    def register(visible: Callable[[list[Turn]], list[Turn]]):
        POLICIES[name] = Policy(visible, summarizes, folds)
        return visible

    return register


@policy("unfold", summarizes=False, folds=False)
@policy("unfold-summaries", summarizes=True, folds=False)
def _everything(turns: list[Turn]) -> list[Turn]:
    return turns


@policy("fold-restart", summarizes=True, folds=True)
def _latest_summary(turns: list[Turn]) -> list[Turn]:
    summaries = [t for t in turns if t.kind == "summary"]
    return summaries[-1:] + _current_segment(turns)


@policy("fold-append", summarizes=True, folds=True)
def _all_summaries(turns: list[Turn]) -> list[Turn]:
    return [t for t in turns if t.kind == "summary"] + _current_segment(turns)


def _current_segment(turns: list[Turn]) -> list[Turn]:
    current = turns[-1].segment + (turns[-1].kind == "summary") if turns else 0
    return [t for t in turns if t.segment == current]


def render(transcript: Transcript, name: str | None = None) -> list[int]:
    """The token ids an agent is prompted with next under the transcript's own memory policy (or policy ``name``:
    the same turns seen another way)."""
    ids = list(transcript.prompt_ids)
    for turn in POLICIES[name or transcript.memory].visible(transcript.turns):
        ids += turn.ids
    return ids
