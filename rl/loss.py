"""The loss math of both training stages, one function per idea; every tensor is per token.

- ``token_logprobs``: log p(x_t | x_<t) of each token of a batch, under a causal LM.
- ``masked_lm_loss`` (SFT): the mean negative log-likelihood of the trained tokens.
- ``policy_loss`` (RL): PPO's clipped surrogate on the ratio r = p_new / p_sampling of each action token,
      -min(r · A, clip(r, 1 - ε, 1 + ε) · A),
  plus β times the k3 estimate of KL(p_new ‖ p_ref): exp(ref - new) - (ref - new) - 1, which is unbiased and never
  negative (Schulman, "Approximating KL divergence").
"""
from __future__ import annotations


def token_logprobs(model, ids, attention):
    """Log-prob of each token given those before it: shape (batch, length - 1)."""
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    return logits.gather(-1, ids[:, 1:, None])[..., 0] - logits.logsumexp(-1)


def masked_lm_loss(model, ids, attention, labels):
    """Mean next-token cross-entropy over the labelled positions (labels -100 elsewhere)."""
    import torch

    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    targets = labels[:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1), ignore_index=-100)


def policy_loss(new, old, mask, advantages, clip: float, reference=None, kl_coef: float = 0.0):
    """The summed clipped-surrogate loss over the action tokens (``mask``), plus ``kl_coef`` times the k3 KL to
    ``reference``; returns it with the summed KL and the count of clipped tokens. The caller divides by the batch's
    action tokens."""
    import torch

    ratio = torch.exp(new - old)
    surrogate = torch.minimum(ratio * advantages, ratio.clamp(1 - clip, 1 + clip) * advantages)
    per_token = -surrogate
    kl = torch.zeros_like(new)
    if reference is not None:
        log_ratio = reference - new
        kl = torch.exp(log_ratio) - log_ratio - 1
        per_token = per_token + kl_coef * kl
    clipped = ((ratio - 1).abs() > clip).float()
    stats = {"kl": float((kl * mask).sum().detach()), "clipped": float((clipped * mask).sum())}
    return (per_token * mask).sum(), stats
