"""The policy update of one agent in synergy RL: its optimizer, its frozen reference, and the clipped
policy-gradient step over its own tokens (the math is in rl/loss.py)."""
from __future__ import annotations

from longshort.config import RLConfig


class PolicyTrainer:
    """The optimizer, the frozen reference and the update of one agent's model."""

    def __init__(self, agent: str, backend, cfg: RLConfig):
        import copy

        import torch

        self.agent, self.backend, self.cfg = agent, backend, cfg
        self.model = backend.model
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=cfg.learning_rate, weight_decay=0.0,
                                           betas=(0.9, 0.95))
        self.reference = copy.deepcopy(self.model).eval().requires_grad_(False) if cfg.kl_coef > 0 else None

    def update(self, samples, step: int) -> dict:
        """``updates_per_step`` optimizer steps over ``samples``, each on gradients clipped to ``max_grad_norm``;
        returns the mean loss, KL, clipped share and gradient norm (before clipping)."""
        import torch

        totals = {"loss": 0.0, "kl": 0.0, "clipped": 0.0, "grad_norm": 0.0}
        self.model.train()
        try:
            for _ in range(self.cfg.updates_per_step):
                self.optimizer.zero_grad(set_to_none=True)
                for key, value in self.accumulate(samples, step).items():
                    totals[key] += value / self.cfg.updates_per_step
                norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
                totals["grad_norm"] += float(norm) / self.cfg.updates_per_step
                self.optimizer.step()
        finally:
            self.model.eval()
        self.backend.weights_changed()
        return {f"{self.agent}_{key}": round(value, 6) for key, value in totals.items()}

    def accumulate(self, samples, step: int) -> dict:
        """Gradients of the loss over ``samples`` in micro-batches; each micro-batch's summed loss is divided by
        the action tokens of all ``samples``, so the result is the mean over every action token of the batch."""
        import torch

        from longshort.rl.loss import policy_loss, token_logprobs
        from longshort.rl.samples import rl_batch

        cfg, device = self.cfg, self.backend.device
        tokens = sum(sum(s.action_mask) for s in samples)
        ordered = sorted(samples, key=lambda s: len(s.input_ids))
        totals = {"loss": 0.0, "kl": 0.0, "clipped": 0.0}
        for start in range(0, len(ordered), cfg.micro_batch_size):
            batch = ordered[start:start + cfg.micro_batch_size]
            ids, attention, mask, old, advantages = (t.to(device) for t in rl_batch(batch, self.backend.pad_token_id))
            new = token_logprobs(self.model, ids, attention)
            reference = None
            if self.reference is not None:
                with torch.no_grad():
                    reference = token_logprobs(self.reference, ids, attention)
            loss, stats = policy_loss(new, old, mask, advantages, cfg.clip, reference, cfg.kl_coef)
            if not torch.isfinite(loss):
                raise FloatingPointError(f"{self.agent} agent: the loss is {loss.item()} at step {step + 1}")
            (loss / tokens).backward()
            totals["loss"] += loss.item() / tokens
            for key in ("kl", "clipped"):
                totals[key] += stats[key] / tokens
        return totals
