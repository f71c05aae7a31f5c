"""Training samples derived from Transcripts, shared by every trainer.

An agent learns only the tokens it generated itself: the open tags the orchestrator forced, the partner's turns,
closing tags the orchestrator added and the prompt are context (mask 0). Under a folding memory policy a
transcript yields one sample per segment, whose context is what the agent saw while writing that segment.
"""
from __future__ import annotations

from longshort.memory import POLICIES
from longshort.rl.sft import Sample
from longshort.transcript import Transcript


def sft_samples(transcript: Transcript, agent: str, policy: str = "unfold") -> list[Sample]:
    """One sample per segment (a single one under ``unfold``), skipping segments where ``agent`` wrote nothing."""
    segments = sorted({t.segment for t in transcript.turns})
    if policy == "unfold":
        segments = segments[:1] if segments else []
    samples = []
    for segment in segments:
        earlier = [t for t in transcript.turns if t.segment < segment]
        current = [t for t in transcript.turns if policy == "unfold" or t.segment == segment]
        ids = list(transcript.prompt_ids)
        for turn in POLICIES[policy](earlier) if earlier else []:
            ids += turn.ids
        mask = [0] * len(ids)
        for turn in current:
            own = int(turn.agent == agent)
            ids += turn.ids
            mask += [0] * len(turn.forced_ids) + [own] * len(turn.token_ids) + [0] * len(turn.closing_ids)
        if any(mask):
            samples.append(Sample(ids, mask))
    return samples
