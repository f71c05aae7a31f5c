"""The loss math of rl/loss.py on hand-made tensors."""
from __future__ import annotations

import pytest


def test_the_clipped_loss_stops_pushing_a_ratio_past_the_clip_and_counts_only_action_tokens():
    import torch

    from longshort.rl.loss import policy_loss

    old = torch.zeros(1, 4)
    mask = torch.tensor([[0.0, 1.0, 1.0, 1.0]])
    new = torch.tensor([[5.0, 0.0, 0.5, -0.5]], requires_grad=True)  # ratios e^0, e^0.5 (past 1.2), e^-0.5
    loss, stats = policy_loss(new, old, mask, torch.ones(1, 4), clip=0.2)
    loss.backward()
    grad = new.grad[0].tolist()
    assert grad[0] == 0.0  # the prompt token is not the agent's
    assert grad[1] == pytest.approx(-1.0)  # d(-ratio)/d(logp) at ratio 1
    assert grad[2] == 0.0  # a positive advantage no longer raises a ratio already above 1 + clip
    assert grad[3] == pytest.approx(-torch.exp(torch.tensor(-0.5)).item())  # below 1 - clip it still pulls up
    assert stats["clipped"] == 2.0
    new.grad = None
    reference = torch.tensor([[0.0, 0.0, 0.5, -0.5]])
    loss, stats = policy_loss(new, old, mask, torch.zeros(1, 4), clip=0.2, reference=reference, kl_coef=1.0)
    assert loss.item() == pytest.approx(0.0, abs=1e-6) and stats["kl"] == pytest.approx(0.0, abs=1e-6)


def test_the_kl_term_is_k3_and_a_negative_advantage_stops_pulling_below_the_clip():
    import math

    import torch

    from longshort.rl.loss import policy_loss

    old, mask = torch.zeros(1, 2), torch.ones(1, 2)
    new = torch.tensor([[-0.5, 0.1]], requires_grad=True)  # ratios e^-0.5 (below 1 - clip) and e^0.1
    reference = torch.tensor([[0.2, -0.3]])
    loss, stats = policy_loss(new, old, mask, -torch.ones(1, 2), clip=0.2, reference=reference, kl_coef=0.5)
    k3 = [math.exp(r - n) - (r - n) - 1 for r, n in ((0.2, -0.5), (-0.3, 0.1))]
    surrogate = [-1.0 * 0.8, -1.0 * math.exp(0.1)]  # min(r A, clip(r) A) with A = -1: the clipped value, then r A
    assert loss.item() == pytest.approx(-sum(surrogate) + 0.5 * sum(k3), rel=1e-5)
    assert stats["kl"] == pytest.approx(sum(k3), rel=1e-5)
    loss.backward()
    # below 1 - clip a negative advantage no longer pushes down: only the KL pulls, towards the reference
    assert new.grad[0, 0].item() == pytest.approx(0.5 * (1 - math.exp(0.2 + 0.5)), rel=1e-5)
