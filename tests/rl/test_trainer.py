"""The policy update of one agent (rl/trainer.py) on the real tiny model."""
from __future__ import annotations


def test_micro_batches_give_the_gradient_of_the_whole_batch(tiny_config):
    import torch

    from longshort.agents.hf_backend import HFBackend
    from longshort.rl.samples import RLSample
    from longshort.rl.trainer import PolicyTrainer

    rng = torch.Generator().manual_seed(0)
    samples = []
    for length, advantage in ((9, 1.0), (14, -0.5), (6, 2.0), (11, 0.3)):
        ids = torch.randint(0, 200, (length,), generator=rng).tolist()
        mask = [0] * 3 + [1] * (length - 3)
        samples.append(RLSample(ids, mask, [m * -1.5 for m in mask], [advantage] * length))
    grads = []
    for micro in (1, 4):
        config = tiny_config.rl.model_copy(update={"micro_batch_size": micro, "kl_coef": 0.1})
        trainer = PolicyTrainer("long", HFBackend(tiny_config.long, "long"), config)
        trainer.model.zero_grad()
        trainer.accumulate(samples, 0)
        grads.append(torch.cat([p.grad.flatten() for p in trainer.model.parameters() if p.grad is not None]))
    assert grads[0].abs().sum() > 0 and torch.allclose(grads[0], grads[1], atol=1e-6)
