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


def test_each_of_updates_per_step_steps_uses_gradients_clipped_to_max_grad_norm(tiny_config):
    import torch

    from longshort.agents.hf_backend import HFBackend
    from longshort.rl.samples import RLSample
    from longshort.rl.trainer import PolicyTrainer

    ids = list(range(40, 60))
    samples = [RLSample(ids, [0] * 4 + [1] * 16, [-3.0] * 20, [1.0] * 20)]
    config = tiny_config.rl.model_copy(update={"updates_per_step": 3, "max_grad_norm": 1e-3, "kl_coef": 0.0})
    trainer = PolicyTrainer("long", HFBackend(tiny_config.long, "long"), config)
    norms = []
    step = trainer.optimizer.step

    def recorded(*args, **kwargs):  # the gradient the optimizer is about to apply
        norms.append(torch.linalg.vector_norm(torch.cat([p.grad.flatten() for p in trainer.model.parameters()
                                                          if p.grad is not None])).item())
        return step(*args, **kwargs)

    trainer.optimizer.step = recorded
    row = trainer.update(samples, 0)
    assert len(norms) == 3 and all(n <= 1e-3 * (1 + 1e-4) for n in norms)
    assert row["long_grad_norm"] > 1e-3  # the gradient before clipping was larger
