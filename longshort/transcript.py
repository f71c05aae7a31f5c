"""The Transcript: the single source of truth of one collaborative solve.

It holds the problem, the prompt ids, and every turn as the token ids the agent generated (with their sampling
log-probs and why generation stopped), plus the open tag the orchestrator forced before it. Everything else is
derived from it: the context each agent sees next (through the memory policy it records), token accounting, SFT
and RL samples, the answer. Text is kept for people; no structure is ever recovered from it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from longshort.problem import Problem

TURN_KINDS = ("think", "summary", "answer")


@dataclass
class Turn:
    agent: str  # "long" | "short"
    kind: str  # "think" | "summary" | "answer"
    forced_ids: list[int]  # tokens the orchestrator placed before generation (the open tag)
    token_ids: list[int]  # tokens the agent generated, the stop token included
    logprobs: list[float] | None
    stop_reason: str  # the backend's "stop" | "length"
    text: str = ""
    segment: int = 0  # memory segment the turn belongs to; a summary closes its segment
    closing_ids: list[int] = field(default_factory=list)  # the close tag, when the orchestrator had to cut the turn

    @property
    def ids(self) -> list[int]:
        return self.forced_ids + self.token_ids + self.closing_ids


@dataclass
class Transcript:
    problem: Problem
    prompt_ids: list[int]
    sample: int = 0  # which of the n samples of this problem
    router: str = ""  # who decided the writers (longshort/routers.py); "" for a transcript built from a trace
    memory: str = "unfold"  # the memory policy its agents saw their contexts under (longshort/memory.py)
    turns: list[Turn] = field(default_factory=list)
    answer: str | None = None
    stop_reason: str | None = None  # answered | budget | context | malformed | timeout | error
    error: str | None = None
    peak_context: int = 0
    seconds: dict = field(default_factory=dict)  # backend time by agent, and the whole solve

    @property
    def done(self) -> bool:
        return self.stop_reason is not None

    @property
    def segment(self) -> int:
        """The index of the segment being written now."""
        if not self.turns:
            return 0
        last = self.turns[-1]
        return last.segment + (last.kind == "summary")

    @property
    def folds(self) -> int:
        return sum(t.kind == "summary" for t in self.turns)

    @property
    def self_folds(self) -> int:
        """Summaries the writer opened itself (the orchestrator forced none of their tokens)."""
        return sum(t.kind == "summary" and not t.forced_ids for t in self.turns)

    def tokens(self, agent: str | None = None, kind: str | None = None) -> int:
        """Generated tokens, optionally of one agent and one turn kind."""
        return sum(len(t.token_ids) for t in self.turns if agent in (None, t.agent) and kind in (None, t.kind))

    def accounting(self) -> dict:
        counts = {f"{agent}_tokens": self.tokens(agent) for agent in ("long", "short")}
        counts.update({f"{kind}_tokens": self.tokens(kind=kind) for kind in TURN_KINDS})
        counts.update(turns=len(self.turns), folds=self.folds, self_folds=self.self_folds,
                      peak_context=self.peak_context)
        return counts

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Transcript":
        data = dict(data)
        data["problem"] = Problem.from_dict(data["problem"])
        data["turns"] = [Turn(**t) for t in data["turns"]]
        return cls(**data)
