"""The request for a transcript's next turn: one seed rule and one think-request builder.

The orchestrator, the answer rollouts and the ``mc`` router all ask an agent for the next chunk of a transcript;
they build that request here, so a candidate chunk the router samples is the very request the orchestrator would
send, and a turn's randomness depends only on the run seed, the problem, the sample and the turn.
"""
from __future__ import annotations

import zlib

from longshort.agents.backend import GenerationRequest
from longshort.memory import render
from longshort.transcript import Transcript


def turn_seed(run_seed: int, transcript: Transcript) -> int:
    """A seed per (run seed, problem, sample, turn): reproducible, and independent across problems."""
    key = f"{run_seed}:{transcript.problem.id}:{transcript.sample}:{len(transcript.turns)}"
    return zlib.crc32(key.encode())


def turn_request(transcript: Transcript, forced: list[int], stops: tuple[int, ...], max_new: int, max_context: int,
                 temperature: float, top_p: float, seed: int, n: int = 1,
                 logprobs: bool = True) -> GenerationRequest | None:
    """The request for a turn that opens with ``forced`` after the transcript's context under its memory policy, at
    most ``max_new`` tokens and no more than the context has room for; None when there is no room at all."""
    context = render(transcript) + forced
    max_new = min(max_new, max_context - len(context))
    if max_new < 1:
        return None
    return GenerationRequest(tuple(context), max_new, stops, temperature, top_p, seed, n=n, logprobs=logprobs)
