"""Supervised training of a causal LM on (token ids, loss mask) samples (rl/samples.py).

One loop serves the tiny world's pretraining and cold-start SFT: the loss covers only the tokens whose mask is 1,
averaged over those tokens in the batch (rl/loss.py).
"""
from __future__ import annotations

import functools
import math
import random
from pathlib import Path
from typing import Callable, Sequence

from longshort.rl.samples import Sample


def save_atomically(state: dict, path: Path) -> None:
    """``torch.save`` through a temporary file, so a kill mid-save leaves the previous file whole. ``state`` holds
    only tensors, numbers, texts and containers of them, so ``load_state`` reads it back without unpickling code."""
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    torch.save(state, partial)
    partial.replace(path)


def load_state(path: Path) -> dict:
    """A training state ``save_atomically`` wrote. It is read with ``weights_only``: PyTorch's unpickler that builds
    tensors, numbers, texts and containers and nothing else, so a file planted in the run folder cannot run code."""
    import pickle

    import torch

    try:
        state = torch.load(path, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError) as e:
        raise ValueError(f"{path} is not a training state longshort wrote ({type(e).__name__}: "
                         f"{' '.join(str(e).split())[:160]}); delete it to start that training over") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path} is not a training state longshort wrote; delete it to start that training over")
    return state


def rate_factor(step: int, *, steps: int, warmup: int, decay_share: float) -> float:
    """The learning rate at ``step`` over its peak: a linear warm-up, the peak, then a cosine to zero over the last
    ``decay_share`` of the steps (1.0: over all of them). A skill a model acquires suddenly and late (the tiny long
    model's arithmetic table) is then learnt at the full rate, not while the rate is already falling."""
    decay = max(1, round(decay_share * steps))
    into_decay = min(max(step - (steps - decay), 0), decay)
    return min(1.0, (step + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * into_decay / decay))


def train_sft(
    model,
    samples: Sequence[Sample],
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    pad_id: int,
    seed: int = 0,
    warmup: int = 50,
    decay_share: float = 1.0,
    device: str = "cpu",
    on_step: Callable[[int, float], None] | None = None,
    desc: str = "train",
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 100,
) -> list[float]:
    """AdamW over ``steps`` random batches, its learning rate scheduled by ``rate_factor``; returns the loss per step.

    A batch holds samples of similar length (a random run of the samples sorted by length), so little of each step
    is spent on padding. With ``checkpoint_dir``, the whole training state (weights, optimizer, schedule, sampler,
    losses) is saved every ``checkpoint_every`` steps and at the end, and a rerun resumes from it: a killed run
    ends with the same number of steps and the same batches.
    """
    import torch
    from tqdm import tqdm

    from longshort.rl.loss import masked_lm_loss
    from longshort.rl.samples import sft_batch

    rng = random.Random(seed)
    torch.manual_seed(seed)
    model.to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=learning_rate, weight_decay=0.01, betas=(0.9, 0.95))
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, functools.partial(rate_factor, steps=steps, warmup=warmup, decay_share=decay_share))
    by_length = sorted(range(len(samples)), key=lambda i: len(samples[i].input_ids))
    batches = [by_length[i:i + batch_size] for i in range(0, len(by_length), batch_size)]
    losses: list[float] = []
    state_path = Path(checkpoint_dir) / "train_state.pt" if checkpoint_dir else None
    if state_path and state_path.exists():
        state = load_state(state_path)
        if state["steps"] != steps or state["samples"] != len(samples):
            raise ValueError(f"{state_path} is from a run of {state['steps']} steps on {state['samples']} samples, "
                             f"not {steps} on {len(samples)}: use another checkpoint folder or delete it")
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        schedule.load_state_dict(state["schedule"])
        rng.setstate(state["rng"])
        losses = state["losses"]

    def save() -> None:
        save_atomically({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                         "schedule": schedule.state_dict(), "rng": rng.getstate(), "losses": losses,
                         "steps": steps, "samples": len(samples)}, state_path)

    bar = tqdm(range(len(losses), steps), desc=desc, unit="step", mininterval=2.0, initial=len(losses), total=steps)
    for step in bar:
        batch = [samples[i] for i in batches[rng.randrange(len(batches))]]
        ids, attention, labels = (t.to(device) for t in sft_batch(batch, pad_id))
        loss = masked_lm_loss(model, ids, attention, labels)
        if not torch.isfinite(loss):
            raise FloatingPointError(f"{desc}: loss is {loss.item()} at step {step}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        schedule.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}", refresh=False)
        if on_step:
            on_step(step, losses[-1])
        if state_path and ((step + 1) % checkpoint_every == 0 or step + 1 == steps):
            save()
    model.eval()
    return losses
