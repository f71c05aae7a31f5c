"""The unit of work every loader produces and every mode solves."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

KINDS = ("math", "mcq", "gsm8k", "synthetic")  # each names the grader that checks it


@dataclass(frozen=True)
class Problem:
    id: str
    question: str
    answer: str
    source: str
    kind: str
    meta: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"problem {self.id}: kind must be one of {', '.join(KINDS)}, got '{self.kind}'")
        if not self.question.strip():
            raise ValueError(f"problem {self.id}: the question is empty")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "Problem":
        return cls(**data)
