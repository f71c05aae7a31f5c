"""Training samples derived from Transcripts, shared by every trainer, and their batches.

An agent learns only the tokens it generated itself: the open tags the orchestrator forced, the partner's turns,
closing tags the orchestrator added and the prompt are context (mask 0). Under a folding memory policy (the one the
transcript records) a transcript yields one sample per segment, whose context is what the agent saw while writing
that segment; under an unfolded one, a single sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from longshort.memory import POLICIES
from longshort.transcript import Transcript


@dataclass(frozen=True)
class Sample:
    """A supervised sample: the loss covers the tokens whose mask is 1."""

    input_ids: list[int]
    loss_mask: list[int]

    def __post_init__(self):
        if len(self.input_ids) != len(self.loss_mask):
            raise ValueError(f"sample has {len(self.input_ids)} ids but {len(self.loss_mask)} mask entries")


@dataclass(frozen=True)
class RLSample:
    input_ids: list[int]
    action_mask: list[int]  # 1 on the agent's own generated tokens
    logprobs: list[float]  # sampling log-prob of each token (0 where the mask is 0)
    advantages: list[float]  # of each token (the same for all of them unless turns get their own credit)


def _segments(transcript: Transcript, agent: str):
    """(ids, own-token mask, log-probs, turn index of each token or -1) per segment (a single one under
    ``unfold``) in which ``agent`` wrote."""
    policy = POLICIES[transcript.memory]
    segments = sorted({t.segment for t in transcript.turns})
    if not policy.folds:
        segments = segments[:1] if segments else []
    for segment in segments:
        earlier = [t for t in transcript.turns if t.segment < segment]
        current = [(n, t) for n, t in enumerate(transcript.turns) if not policy.folds or t.segment == segment]
        ids = list(transcript.prompt_ids)
        for turn in policy.visible(earlier) if earlier else []:
            ids += turn.ids
        mask = [0] * len(ids)
        logprobs = [0.0] * len(ids)
        turn_of = [-1] * len(ids)
        for n, turn in current:
            own = int(turn.agent == agent)
            ids += turn.ids
            mask += [0] * len(turn.forced_ids) + [own] * len(turn.token_ids) + [0] * len(turn.closing_ids)
            generated = turn.logprobs if own and turn.logprobs is not None else [0.0] * len(turn.token_ids)
            logprobs += [0.0] * len(turn.forced_ids) + list(generated) + [0.0] * len(turn.closing_ids)
            turn_of += [n] * len(turn.ids)
        if any(mask):
            yield ids, mask, logprobs, turn_of


def sft_samples(transcript: Transcript, agent: str) -> list[Sample]:
    return [Sample(ids, mask) for ids, mask, _, _ in _segments(transcript, agent)]


def rl_samples(transcript: Transcript, agent: str, advantage: float,
               turn_credit: list[float] | None = None) -> list[RLSample]:
    """The agent's samples with the sampling log-probs its loss ratio is taken against. Every token's advantage is
    ``advantage``, plus ``turn_credit[n]`` on the tokens of turn ``n`` when given."""
    if any(t.agent == agent and t.logprobs is None for t in transcript.turns):
        raise ValueError(f"transcript of problem {transcript.problem.id} has {agent} turns without log-probs")
    samples = []
    for ids, mask, logprobs, turn_of in _segments(transcript, agent):
        advantages = [advantage + (turn_credit[n] if turn_credit and n >= 0 else 0.0) for n in turn_of]
        samples.append(RLSample(ids, mask, logprobs, advantages))
    return samples


def sft_batch(samples: Sequence[Sample], pad_id: int):
    """Right-padded ids, attention mask and labels (-100 where no loss)."""
    import torch

    width = max(len(s.input_ids) for s in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(samples), width), dtype=torch.long)
    labels = torch.full((len(samples), width), -100, dtype=torch.long)
    for row, s in enumerate(samples):
        n = len(s.input_ids)
        ids[row, :n] = torch.tensor(s.input_ids)
        attention[row, :n] = 1
        labels[row, :n] = torch.where(torch.tensor(s.loss_mask, dtype=torch.bool), ids[row, :n], -100)
    return ids, attention, labels


def rl_batch(samples: Sequence[RLSample], pad_id: int):
    """Right-padded ids and attention, and per predicted position: action mask, sampling log-probs, advantage."""
    import torch

    width = max(len(s.input_ids) for s in samples)
    ids = torch.full((len(samples), width), pad_id, dtype=torch.long)
    attention = torch.zeros((len(samples), width), dtype=torch.long)
    mask = torch.zeros((len(samples), width), dtype=torch.float32)
    old = torch.zeros((len(samples), width), dtype=torch.float32)
    advantages = torch.zeros((len(samples), width), dtype=torch.float32)
    for row, s in enumerate(samples):
        n = len(s.input_ids)
        ids[row, :n] = torch.tensor(s.input_ids)
        attention[row, :n] = 1
        mask[row, :n] = torch.tensor(s.action_mask, dtype=torch.float32)
        old[row, :n] = torch.tensor(s.logprobs)
        advantages[row, :n] = torch.tensor(s.advantages)
    return ids, attention, mask[:, 1:], old[:, 1:], advantages[:, 1:]
