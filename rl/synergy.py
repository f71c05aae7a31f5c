"""Synergy RL (`make rl`): the pair solves training problems, shares one reward, and each agent learns its own tokens.

Each step: ``problems_per_step`` problems × ``samples_per_problem`` rollouts through the orchestrator (the router
and memory policy named in ``rl``), with the sampling log-prob of every token; rewards and per-agent advantages
normalized within each problem's group (rl/rewards.py); then a clipped policy-gradient update of each agent being
trained, on its own tokens only (rl/samples.py masks the partner's), with an optional KL to the starting model.
The local backend trains the very models the in-process HF backends serve, so the next step samples from the
updated policies.

Runs into ``rl.out_dir``: ``metrics.jsonl`` (a row per step), ``tensorboard/``, ``checkpoint/state.pt`` (weights,
optimizers and step, every ``checkpoint_every`` steps), ``reward.png``, the trained agents ``long/`` and ``short/``,
and ``eval/`` (before vs after). A rerun resumes from the checkpoint with the same rollouts, and no metrics row is
written twice. A non-finite loss stops the run and leaves the last good checkpoint in place.
"""
from __future__ import annotations

import json
import random
import time
from pathlib import Path

from longshort.config import Config, RLConfig
from longshort.problem import Problem
from longshort.protocol import AGENTS


def starting_config(config: Config) -> Config:
    """``config`` with the agents RL starts from: ``rl.init``'s long/ and short/ folders, else the models as set."""
    if config.rl.init is None:
        return config
    paths = {agent: Path(config.rl.init) / agent for agent in AGENTS}
    missing = [str(p) for p in paths.values() if not (p / "config.json").is_file()]
    if missing:
        raise FileNotFoundError(f"{config.source}: rl.init holds no trained agent at {', '.join(missing)} "
                                "(run `make train-coldstart` first, or set rl.init: null to start from the models as set)")
    return config.with_model_paths(paths)


def training_problems(config: Config) -> list[Problem]:
    if config.rl.problems:
        from longshort.jsonl import read_problems

        return read_problems(config.rl.problems)
    if config.tiny is None:
        raise ValueError(f"{config.source}: no 'tiny' section, so set rl.problems to a JSONL of training problems")
    from longshort.data.tiny_world import as_problem, problems

    used, train_set = config.coldstart.traces, problems(config.tiny)[0]
    if used >= len(train_set):
        raise ValueError(f"{config.source}: cold-start used all {len(train_set)} tiny training problems "
                         f"(coldstart.traces: {used}), so none is left for RL; lower it or set rl.problems")
    return [as_problem(p, used + i) for i, p in enumerate(train_set[used:])]


def trained_agents(cfg: RLConfig, step: int) -> tuple[str, ...]:
    """Both agents each step (``joint``), or one per round of ``alternate_every`` steps, the long agent first."""
    return AGENTS if cfg.train == "joint" else (AGENTS[(step // cfg.alternate_every) % 2],)


def token_logprobs(model, ids, attention):
    """Log-prob of each token given those before it: shape (batch, length - 1)."""
    logits = model(input_ids=ids, attention_mask=attention).logits[:, :-1].float()
    return logits.gather(-1, ids[:, 1:, None])[..., 0] - logits.logsumexp(-1)


def collate(samples, pad_id: int):
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


def policy_loss(new, old, mask, advantages, clip: float, reference=None, kl_coef: float = 0.0):
    """Summed clipped-surrogate loss over the action tokens (PPO's, on the ratio to the sampling policy), plus
    ``kl_coef`` times the k3 estimate of KL to ``reference``; every tensor is per token. The caller divides by the
    batch's action tokens."""
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


class Trainer:
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
        """``updates_per_step`` optimizer steps over ``samples``; returns the mean loss, KL and clipped share."""
        import torch

        totals = {"loss": 0.0, "kl": 0.0, "clipped": 0.0}
        self.model.train()
        try:
            for _ in range(self.cfg.updates_per_step):
                self.optimizer.zero_grad(set_to_none=True)
                for key, value in self.accumulate(samples, step).items():
                    totals[key] += value / self.cfg.updates_per_step
                torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.max_grad_norm)
                self.optimizer.step()
        finally:
            self.model.eval()
        self.backend.weights_changed()
        return {f"{self.agent}_{key}": round(value, 6) for key, value in totals.items()}

    def accumulate(self, samples, step: int) -> dict:
        """Gradients of the loss over ``samples`` in micro-batches; each micro-batch's summed loss is divided by
        the action tokens of all ``samples``, so the result is the mean over every action token of the batch."""
        import torch

        cfg, device = self.cfg, self.backend.device
        tokens = sum(sum(s.action_mask) for s in samples)
        ordered = sorted(samples, key=lambda s: len(s.input_ids))
        totals = {"loss": 0.0, "kl": 0.0, "clipped": 0.0}
        for start in range(0, len(ordered), cfg.micro_batch_size):
            batch = ordered[start:start + cfg.micro_batch_size]
            ids, attention, mask, old, advantages = (t.to(device) for t in collate(batch, self.backend.pad_token_id))
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


def rollout_settings(config: Config, step: int):
    """The solve and sampling configs of RL rollouts (both backends): the ``rl`` router and memory policy, sampling at
    ``rl.temperature`` with a seed per step."""
    cfg = config.rl
    memory = config.solve.memory.model_copy(update={"policy": cfg.policy})
    solve = config.solve.model_copy(update={"router": cfg.router, "memory": memory})
    sampling = config.sampling.model_copy(update={"temperature": cfg.temperature, "top_p": 1.0,
                                                  "seed": cfg.seed * 1_000_003 + step})
    return solve, sampling


def rollout_step(config: Config, hosted, problems: list[Problem], step: int):
    """The step's transcripts, rewards and per-agent RL samples."""
    from longshort.rl.rewards import advantages, rewards
    from longshort.rl.samples import rl_samples
    from longshort.runner import orchestrator

    cfg = config.rl
    chosen = random.Random(f"{cfg.seed}:{step}").sample(problems, min(cfg.problems_per_step, len(problems)))
    solve, sampling = rollout_settings(config, step)
    orch = orchestrator(config.model_copy(update={"sampling": sampling}), hosted, solve)
    transcripts = orch.solve([(p, s) for p in chosen for s in range(cfg.samples_per_problem)])
    scored = rewards(transcripts, cfg.reward)
    totals = [r.total for r in scored]
    credits = turn_credits(config, hosted, transcripts) if cfg.turn_credit else [None] * len(transcripts)
    samples = {}
    for agent in AGENTS:
        agent_advantages = advantages(transcripts, totals, agent, cfg.advantage)
        samples[agent] = [s for t, a, c in zip(transcripts, agent_advantages, credits) if a is not None
                          for s in rl_samples(t, agent, cfg.policy, a, c)]
    return transcripts, scored, samples


def turn_credits(config: Config, hosted, transcripts) -> list[list[float]]:
    """Per transcript and turn: ``rl.turn_credit`` times the change a think turn made to the chance of a right
    answer (``scoring.rollouts`` answer rollouts before and after it, as the importance scorer measures a thought);
    0 for other turns and where a state does not fit the scoring model."""
    import copy

    from longshort.importance import Rollouts

    agents, tokenizer, protocol = hosted
    rollouts = Rollouts(agents, tokenizer, protocol, config.scoring.model_copy(update={"policy": "answer"}),
                        config.rl.policy, config.rl.seed)
    states, where = [], []
    for n, transcript in enumerate(transcripts):
        for length in range(len(transcript.turns) + 1):
            state = copy.copy(transcript)
            state.turns = transcript.turns[:length]
            if rollouts.fits(state):
                states.append(state)
                where.append((n, length))
    chance = dict(zip(where, (e.accuracy for e in rollouts.estimate(states))))
    credits = []
    for n, transcript in enumerate(transcripts):
        credits.append([config.rl.turn_credit * (chance[(n, i + 1)] - chance[(n, i)])
                        if turn.kind == "think" and (n, i) in chance and (n, i + 1) in chance else 0.0
                        for i, turn in enumerate(transcript.turns)])
    return credits


def long_share(long_tokens: float, short_tokens: float) -> float:
    """The long agent's share of the pair's generated tokens."""
    return long_tokens / max(long_tokens + short_tokens, 1e-9)


def step_metrics(step: int, transcripts, scored) -> dict:
    n = len(transcripts)
    long_tokens = sum(t.tokens("long") for t in transcripts) / n
    short_tokens = sum(t.tokens("short") for t in transcripts) / n
    return {
        "step": step + 1,
        "reward": round(sum(r.total for r in scored) / n, 5),
        "accuracy": round(sum(r.correct for r in scored) / n, 5),
        "answered": round(sum(r.valid for r in scored) / n, 5),
        "long_tokens": round(long_tokens, 3),
        "short_tokens": round(short_tokens, 3),
        "long_share": round(long_share(long_tokens, short_tokens), 5),
        "folds": round(sum(t.folds for t in transcripts) / n, 3),
    }


def _keep_rows(path: Path, last_step: int) -> list[dict]:
    """The metrics rows up to ``last_step`` (a resumed run rewrites the rest), the file cut to them."""
    rows = []
    if path.exists():
        for line in path.read_text().splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:  # a partial last line
                continue
            if row["step"] <= last_step:
                rows.append(row)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def train(config: Config, out: Path, log=print) -> list[dict]:
    """The local backend's RL loop; returns the metrics rows of every step."""
    import torch
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from longshort.jsonl import Appender
    from longshort.rl.sft import save_atomically
    from longshort.runner import start

    cfg = config.rl
    for agent in AGENTS:
        if config.model(agent).backend != "hf":
            raise ValueError(f"{config.source}: the local RL backend trains the models its HF backends serve; "
                             f"set {agent}.backend: hf (or rl.backend: openrlhf)")
    problems = training_problems(config)
    hosted = start(config, use_ray=False)
    backends = {agent: hosted[0][agent].actor.backend for agent in AGENTS}
    trainers = {agent: Trainer(agent, backends[agent], cfg) for agent in AGENTS}
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "checkpoint" / "state.pt"
    done = 0
    if state_path.exists():
        state = torch.load(state_path, weights_only=False)
        done = state["step"]
        for agent, trainer in trainers.items():
            trainer.model.load_state_dict(state["models"][agent])
            trainer.optimizer.load_state_dict(state["optimizers"][agent])
            trainer.backend.weights_changed()
        log(f"resuming RL at step {done + 1} of {cfg.steps} from {state_path}")
    rows = _keep_rows(out / "metrics.jsonl", done)
    metrics = Appender(out / "metrics.jsonl")
    board = SummaryWriter(str(out / "tensorboard"), purge_step=done + 1)

    def save(step: int) -> None:
        save_atomically({"step": step, "models": {a: t.model.state_dict() for a, t in trainers.items()},
                         "optimizers": {a: t.optimizer.state_dict() for a, t in trainers.items()}}, state_path)

    bar = tqdm(range(done, cfg.steps), desc="rl", unit="step", initial=done, total=cfg.steps, mininterval=2.0)
    try:
        for step in bar:
            began = time.perf_counter()
            transcripts, scored, samples = rollout_step(config, hosted, problems, step)
            row = step_metrics(step, transcripts, scored)
            row["trained"] = list(trained_agents(cfg, step))
            for agent in row["trained"]:
                if samples[agent]:
                    row.update(trainers[agent].update(samples[agent], step))
            row["seconds"] = round(time.perf_counter() - began, 3)
            metrics.write(row)
            rows.append(row)
            for key, value in row.items():
                if isinstance(value, (int, float)) and key != "step":
                    board.add_scalar(f"rl/{key}", value, row["step"])
            bar.set_postfix(reward=f"{row['reward']:.3f}", acc=f"{row['accuracy']:.2f}",
                            long=f"{row['long_share']:.2f}", refresh=False)
            if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
                save(step + 1)
    finally:
        bar.close()
        metrics.close()
        board.close()
    for agent, trainer in trainers.items():
        trainer.model.save_pretrained(out / agent)
        backends[agent].tokenizer.save_pretrained(out / agent)
    plot_rewards(rows, out / "reward.png")
    return rows


def plot_rewards(rows: list[dict], path: Path) -> None:
    """Mean reward (and accuracy, long-token share) per step, with a moving average."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    steps = [r["step"] for r in rows]
    figure, axes = plt.subplots(1, 3, figsize=(13, 3.5))
    for axis, key in zip(axes, ("reward", "accuracy", "long_share")):
        values = [r[key] for r in rows]
        window = max(1, len(values) // 10)
        smooth = [sum(values[max(0, i - window + 1):i + 1]) / len(values[max(0, i - window + 1):i + 1])
                  for i in range(len(values))]
        axis.plot(steps, values, alpha=0.35, label="per step")
        axis.plot(steps, smooth, label=f"mean of {window}")
        axis.set_xlabel("step")
        axis.set_title(key.replace("_", " "))
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def submit_self(config: Config, address: str, overwrite: bool, eval_limit: int, dry_run: bool, log=print) -> list[str]:
    """Send this very run to the Ray cluster at ``address`` as a job. Its working directory holds only the config,
    every path in it resolved here, so the job finds the models and writes ``rl.out_dir`` where this machine would
    (storage the head node shares)."""
    import shutil
    import tempfile

    import yaml

    from longshort.rl.jobs import submit, submit_command

    folder = Path(tempfile.mkdtemp(prefix="longshort-job-"))
    try:
        (folder / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json", exclude={"source"})))
        entrypoint = ["longshort", "rl", "--config", "config.yaml", "--eval-limit", str(eval_limit)]
        command = submit_command(address, folder, entrypoint + (["--overwrite"] if overwrite else []))
        submit(command, dry_run, log)
    finally:
        shutil.rmtree(folder)
    return command


def run(config: Config, overwrite: bool = False, eval_limit: int | None = 200, dry_run: bool = False,
        submit: str | None = None, log=print) -> dict:
    from longshort.rl.runs import claim, fingerprint

    cfg, out = config.rl, Path(config.rl.out_dir)
    if submit:
        return {"commands": [submit_self(config, submit, overwrite, eval_limit or 0, dry_run, log)]}
    if dry_run and cfg.backend != "openrlhf":
        raise ValueError("--dry-run prints the OpenRLHF commands (or, with --submit, the job): set rl.backend: openrlhf")
    begin = starting_config(config)
    models = {agent: fingerprint(begin.model(agent).path) for agent in AGENTS}
    if not dry_run:
        claim(out, {"rl": cfg.model_dump(), "solve": config.solve.model_dump(), "models": models}, overwrite, "RL")
    if cfg.backend == "openrlhf":
        from longshort.rl.openrlhf_rl import launch

        return {"commands": launch(begin, out, dry_run, log)}
    rows = train(begin, out, log)
    result = {"steps": len(rows), "first_reward": rows[0]["reward"], "last_reward": rows[-1]["reward"]}
    if eval_limit and config.tiny is not None:
        after = begin.with_model_paths({agent: out / agent for agent in AGENTS})
        from longshort.demo import evaluate

        pair = ((cfg.router,), (cfg.policy,))
        log("before RL:")
        result["before"] = evaluate(begin, eval_limit, out / "eval" / "before", *pair)
        log("after RL:")
        result["after"] = evaluate(after, eval_limit, out / "eval" / "after", *pair)
        pair = f"{cfg.router}/{cfg.policy}"
        result["change"] = change(result["before"][pair], result["after"][pair])
        (out / "eval" / "summary.json").write_text(json.dumps(result, indent=2))
        c = result["change"]
        log(f"{pair}: accuracy {c['accuracy_before']:.1%} -> {c['accuracy_after']:.1%}; long-token share "
            f"{c['long_share_before']:.1%} -> {c['long_share_after']:.1%} ({c['long_share_change']:+.1%} relative)")
    return result


def change(before: dict, after: dict) -> dict:
    """Accuracy and long-token share of the pair before and after RL."""
    def share(row: dict) -> float:
        return long_share(row["long_tokens"], row["short_tokens"])

    return {"accuracy_before": before["accuracy"], "accuracy_after": after["accuracy"],
            "long_share_before": share(before), "long_share_after": share(after),
            "long_share_change": share(after) / max(share(before), 1e-9) - 1}
