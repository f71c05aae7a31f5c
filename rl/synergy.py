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
import time
from pathlib import Path

from longshort.config import Config, RLConfig
from longshort.protocol import AGENTS


def trained_agents(cfg: RLConfig, step: int) -> tuple[str, ...]:
    """Both agents each step (``joint``), or one per round of ``alternate_every`` steps, the long agent first."""
    return AGENTS if cfg.train == "joint" else (AGENTS[(step // cfg.alternate_every) % 2],)


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


def heldout_problems(config: Config) -> list:
    """The held-out problems the Fold/Unfold gap is measured on: ``rl.heldout``, else the tiny world's."""
    if config.rl.heldout:
        from longshort.jsonl import read_problems

        return read_problems(config.rl.heldout)[: config.rl.gap_problems]
    if config.tiny is None:
        raise ValueError(f"{config.source}: rl.gap_every needs held-out problems: set rl.heldout")
    from longshort.data.benchmarks import load_benchmark

    return load_benchmark("synthetic", limit=config.rl.gap_problems, tiny=config.tiny)


def fold_gap(config: Config, hosted, problems: list, step: int) -> dict:
    """The pair's greedy accuracy on ``problems`` under Fold and under Unfold (``rl.gap_policies``), and the gap."""
    from longshort.eval.metrics import correct
    from longshort.eval.modes import solve_config
    from longshort.runner import orchestrator

    accuracy = {}
    for name, policy in zip(("fold", "unfold"), config.rl.gap_policies):
        solved = orchestrator(config, hosted, solve_config(config, config.rl.router, policy)).solve(problems)
        accuracy[name] = sum(map(correct, solved)) / len(solved)
    return {"step": step, "fold_accuracy": round(accuracy["fold"], 5), "unfold_accuracy": round(accuracy["unfold"], 5),
            "fold_gap": round(accuracy["unfold"] - accuracy["fold"], 5)}


def train_rl(config: Config, out: Path, log=print) -> list[dict]:
    """The local backend's RL loop; returns the metrics rows of every step."""
    from torch.utils.tensorboard import SummaryWriter
    from tqdm import tqdm

    from longshort.eval.report import plot_training
    from longshort.jsonl import Appender
    from longshort.rl.experience import rollout_step, step_metrics, training_problems
    from longshort.rl.sft import load_state, save_atomically
    from longshort.rl.trainer import PolicyTrainer
    from longshort.runner import start

    cfg = config.rl
    for agent in AGENTS:
        if config.model(agent).backend != "hf":
            raise ValueError(f"{config.source}: the local RL backend trains the models its HF backends serve; "
                             f"set {agent}.backend: hf (or rl.backend: openrlhf)")
    problems = training_problems(config)
    hosted = start(config, use_ray=False)
    trainers = {agent: PolicyTrainer(agent, hosted.backend(agent), cfg) for agent in AGENTS}
    out.mkdir(parents=True, exist_ok=True)
    state_path = out / "checkpoint" / "state.pt"
    done = 0
    if state_path.exists():
        state = load_state(state_path)
        done = state["step"]
        for agent, trainer in trainers.items():
            trainer.model.load_state_dict(state["models"][agent])
            trainer.optimizer.load_state_dict(state["optimizers"][agent])
            trainer.backend.weights_changed()
        log(f"resuming RL at step {done + 1} of {cfg.steps} from {state_path}")
    rows = _keep_rows(out / "metrics.jsonl", done)
    metrics = Appender(out / "metrics.jsonl")
    board = SummaryWriter(str(out / "tensorboard"), purge_step=done + 1)
    gaps = _keep_rows(out / "gap.jsonl", done)
    gap_file = Appender(out / "gap.jsonl")
    gap_set = heldout_problems(config) if cfg.gap_every else []

    def measure_gap(step: int) -> dict:
        """Fold and Unfold on the held-out problems after ``step`` steps, into gap.jsonl."""
        gap = fold_gap(config, hosted, gap_set, step)
        gap_file.write(gap)
        gaps.append(gap)
        return gap

    if cfg.gap_every and not gaps:
        measure_gap(0)

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
            if cfg.gap_every and ((step + 1) % cfg.gap_every == 0 or step + 1 == cfg.steps):
                row.update({k: v for k, v in measure_gap(step + 1).items() if k != "step"})
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
        gap_file.close()
        board.close()
    for agent, trainer in trainers.items():
        trainer.model.save_pretrained(out / agent)
        hosted.tokenizer.save_pretrained(out / agent)
    plot_training(rows, out / "reward.png", gaps)
    return rows


def run(config: Config, overwrite: bool = False, eval_limit: int | None = 200, dry_run: bool = False,
        submit: str | None = None, log=print) -> dict:
    from contextlib import nullcontext

    from longshort.rl.experience import starting_config
    from longshort.rl.jobs import submit_self
    from longshort.runs import claim, model_settings

    cfg, out = config.rl, Path(config.rl.out_dir)
    if submit:
        return {"commands": [submit_self(config, submit, overwrite, eval_limit or 0, dry_run, log)]}
    if dry_run and cfg.backend != "openrlhf":
        raise ValueError("--dry-run prints the OpenRLHF commands (or, with --submit, the job): set rl.backend: openrlhf")
    begin = starting_config(config)
    text = [agent for agent in AGENTS if begin.model(agent).format != "protocol"]
    if text:
        raise ValueError(f"{config.source}: RL trains agents that speak the protocol, and the {' and '.join(text)} "
                         "model has format: text; set rl.init to a cold-start run (`longshort coldstart`)")
    if eval_limit and cfg.backend == "local":
        from longshort.eval.run_benchmarks import heldout_benchmark

        heldout_benchmark(config)  # a config that cannot be evaluated stops before any work
    spec = {"rl": cfg.model_dump(), "solve": config.solve.model_dump(exclude={"concurrency"}),
            "scoring": config.scoring.model_dump(), "protocol": config.protocol.model_dump(),
            "models": model_settings(begin)}
    with nullcontext() if dry_run else claim(out, spec, "RL", folder=True, overwrite=overwrite,
                                             hint="pass --overwrite to replace it"):
        return _run_claimed(config, begin, out, eval_limit, dry_run, log)


def _run_claimed(config: Config, begin: Config, out: Path, eval_limit: int | None, dry_run: bool, log) -> dict:
    cfg = config.rl
    if cfg.backend == "openrlhf":
        from longshort.rl.openrlhf_rl import launch

        return {"commands": launch(begin, out, dry_run, log)}
    rows = train_rl(begin, out, log)
    result = {"steps": len(rows), "first_reward": rows[0]["reward"], "last_reward": rows[-1]["reward"]}
    if eval_limit:
        after = begin.with_model_paths({agent: out / agent for agent in AGENTS})
        from longshort.eval.modes import mode_name
        from longshort.eval.run_benchmarks import before_after

        # the pair under the policy it trained in, or (Mix-RL) under each policy of the mix
        pairs = [mode_name(cfg.router, policy) for policy in cfg.policies]
        result |= before_after(begin, after, eval_limit, out / "eval", pairs, log)
        result["change"] = {pair: change(result["before"][pair], result["after"][pair]) for pair in pairs}
        (out / "eval" / "summary.json").write_text(json.dumps(result, indent=2))
        for pair, c in result["change"].items():
            log(f"{pair}: accuracy {c['accuracy_before']:.1%} -> {c['accuracy_after']:.1%}; long-token share "
                f"{c['long_share_before']:.1%} -> {c['long_share_after']:.1%} ({c['long_share_change']:+.1%} "
                "relative)")
    return result


def change(before: dict, after: dict) -> dict:
    """Accuracy and long-token share of the pair before and after RL."""
    from longshort.rl.experience import long_share

    def share(row: dict) -> float:
        return long_share(row["long_tokens"], row["short_tokens"])

    return {"accuracy_before": before["pass@1"], "accuracy_after": after["pass@1"],
            "long_share_before": share(before), "long_share_after": share(after),
            "long_share_change": share(after) / max(share(before), 1e-9) - 1}
