"""The Backend contract: token ids in, token ids with log-probs out.

Every model host (transformers, vLLM) implements ``generate`` with exactly these types, so the orchestrator,
the scorer and the trainers never depend on which engine produced a completion.

Conventions shared by all backends:
- Generation ends at the first token in ``stop_token_ids`` or the model's EOS token; that token is part of the
  completion (with its log-prob) and ``stop_reason`` is ``"stop"``. Otherwise it ends after ``max_new_tokens``
  with ``stop_reason`` ``"length"``.
- ``logprobs`` are the log-probabilities of the sampled tokens under the model's raw distribution
  (log-softmax of the logits, before temperature and top-p), which is what a trainer recomputes.
- ``temperature == 0`` is greedy decoding. Completion ``j`` of a request with ``n > 1`` is seeded with
  ``seed + j``, so a seeded request is reproducible on one backend.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol, Sequence


class ContextLengthError(ValueError):
    """A prompt does not fit the model's context window."""


@dataclass(frozen=True)
class GenerationRequest:
    prompt_ids: tuple[int, ...]
    max_new_tokens: int
    stop_token_ids: tuple[int, ...] = ()
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    n: int = 1
    logprobs: bool = True

    def __post_init__(self):
        # A tuple is taken as ids already: the orchestrator renders one per turn, and converting each id of a long
        # context anew would cost more than all the rest of the turn's bookkeeping. Any other sequence (a list, a
        # numpy array) is converted.
        if type(self.prompt_ids) is not tuple:
            object.__setattr__(self, "prompt_ids", tuple(int(t) for t in self.prompt_ids))
        object.__setattr__(self, "stop_token_ids", tuple(int(t) for t in self.stop_token_ids))
        if not self.prompt_ids:
            raise ValueError("GenerationRequest.prompt_ids is empty")
        if self.max_new_tokens < 1:
            raise ValueError(f"GenerationRequest.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if self.n < 1:
            raise ValueError(f"GenerationRequest.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"GenerationRequest.temperature must be >= 0, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"GenerationRequest.top_p must be in (0, 1], got {self.top_p}")


@dataclass
class Completion:
    token_ids: list[int]
    logprobs: list[float] | None
    stop_reason: str  # "stop" | "length"

    @property
    def stop_token_id(self) -> int | None:
        return self.token_ids[-1] if self.stop_reason == "stop" else None


@dataclass
class GenerationResult:
    completions: list[Completion]
    prompt_tokens: int
    prefill_tokens: int  # prompt tokens the engine computed for this request; fewer when a prefix was reused
    seconds: float = 0.0


class Backend(Protocol):
    """A hosted model. ``generate`` is batched: pass every pending request at once."""

    name: str
    eos_token_id: int | None
    max_context: int

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]: ...


def check_fits(request: GenerationRequest, max_context: int, model_name: str) -> int:
    """Return the number of new tokens that fit; raise if the prompt itself does not."""
    room = max_context - len(request.prompt_ids)
    if room < 1:
        raise ContextLengthError(
            f"prompt of {len(request.prompt_ids)} tokens does not fit the context of model '{model_name}' "
            f"({max_context} tokens)"
        )
    return min(request.max_new_tokens, room)
