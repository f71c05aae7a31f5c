"""Samples from hand-built transcripts: each agent learns only its own tokens, one sample per folded segment."""
from __future__ import annotations

import pytest

from longshort.problem import Problem
from longshort.rl.samples import Sample, rl_batch, rl_samples, sft_batch, sft_samples
from longshort.transcript import Transcript, Turn

PROMPT = [1, 2, 3]


def turn(agent, kind, body, segment=0, logprob=-0.5, closing=()):
    return Turn(agent, kind, [90], list(body), [logprob] * len(body), "stop", "", segment, list(closing))


def pair(memory="unfold") -> Transcript:
    """long thinks, short thinks and is cut (closing tag added), short summarizes, long answers in segment 1."""
    turns = [turn("long", "think", [5, 5, 5]), turn("short", "think", [6, 6], logprob=-0.25, closing=[91]),
             turn("short", "summary", [7], logprob=-0.1), turn("long", "answer", [8, 9], segment=1)]
    return Transcript(Problem("a", "q", "7", "s", "synthetic"), PROMPT, memory=memory, turns=turns)


def own(sample, mask):
    return [i for i, m in zip(sample.input_ids, mask) if m]


def test_unfolded_each_agent_learns_its_generated_tokens_only():
    t = pair()
    (long,) = sft_samples(t, "long")
    (short,) = sft_samples(t, "short")
    assert long.input_ids == short.input_ids == PROMPT + [t for u in t.turns for t in u.ids]
    assert own(long, long.loss_mask) == [5, 5, 5, 8, 9]
    assert own(short, short.loss_mask) == [6, 6, 7]  # neither the forced open tags nor the added closing tag


def test_folded_a_transcript_gives_one_sample_per_segment_with_the_context_seen_then():
    t = pair("fold-restart")
    first, second = sft_samples(t, "long")
    assert first.input_ids == PROMPT + [x for u in t.turns[:3] for x in u.ids]
    assert second.input_ids == PROMPT + t.turns[2].ids + t.turns[3].ids  # the summary, then segment 1
    assert own(second, second.loss_mask) == [8, 9]
    assert len(sft_samples(t, "short")) == 1  # the short agent wrote nothing in segment 1


def test_rl_samples_carry_the_sampling_logprobs_and_per_turn_credit():
    t = pair()
    (long,) = rl_samples(t, "long", 0.7)
    assert [lp for lp, m in zip(long.logprobs, long.action_mask) if m] == [-0.5] * 5
    assert not any(lp for lp, m in zip(long.logprobs, long.action_mask) if not m)  # the partner's are not used
    (short,) = rl_samples(t, "short", 0.5, turn_credit=[0.0, 0.25, -0.125, 1.0])
    per_turn = [len(PROMPT)] + [len(u.ids) for u in t.turns]
    expected = [0.5] * per_turn[0] + [0.5] * per_turn[1] + [0.75] * per_turn[2] + [0.375] * per_turn[3] \
        + [1.5] * per_turn[4]
    assert short.advantages == expected
    t.turns[1].logprobs = None
    with pytest.raises(ValueError, match="without log-probs"):
        rl_samples(t, "short", 0.0)


def test_batches_pad_on_the_right_and_shift_to_predicted_positions():
    samples = [Sample([1, 2, 3], [0, 1, 1]), Sample([4, 5], [0, 1])]
    ids, attention, labels = sft_batch(samples, pad_id=0)
    assert ids.tolist() == [[1, 2, 3], [4, 5, 0]] and attention.tolist() == [[1, 1, 1], [1, 1, 0]]
    assert labels.tolist() == [[-100, 2, 3], [-100, 5, -100]]
    (rl,) = rl_samples(pair(), "long", 2.0)
    ids, attention, mask, old, advantages = rl_batch([rl], pad_id=0)
    assert mask.shape == (1, len(rl.input_ids) - 1) and mask[0].tolist() == rl.action_mask[1:]
    assert old[0].tolist() == rl.logprobs[1:] and set(advantages[0].tolist()) == {2.0}
    with pytest.raises(ValueError, match="2 ids but 1 mask"):
        Sample([1, 2], [1])
