"""Synergy RL on OpenRLHF (pinned 0.11.2): alternating rounds, each one ``ray job submit`` of ``train_ppo_ray``.

OpenRLHF trains one policy per run, so the pair trains in rounds: round r trains the long agent, then the short
one, each for ``rl.alternate_every`` steps, with the other agent frozen as its partner at its latest checkpoint.
Every round is a Ray job whose entrypoint is ``python -m openrlhf.cli.train_ppo_ray``: its DeepSpeed actor and
vLLM engines share ``rl.num_gpus`` GPUs (``--train.colocate_all``), and rl/openrlhf_agent.py (``--train.agent_func_path``)
plays our protocol inside its rollouts, the partner in a Ray actor placed with the partner's own ``num_gpus``.

The same keys mean the same training as on the local backend: the executor hands OpenRLHF the advantages of
rl/rewards.py, computed over each problem's group of samples, and the ``flash_reinforce`` estimator passes them
through (it subtracts the batch's mean, which is 0 for them, and whitens nothing); ``rl.max_grad_norm`` clips the
gradient; the learning rate is constant, as the local optimizer's (OpenRLHF's default cosine schedule with warm-up
would start again every round); ``rl.clip``, ``rl.kl_coef`` (k3, as a loss) and ``rl.updates_per_step`` map to
their flags. A folding rollout (Fold-RL, Mix-RL) trains as one sample per segment, each with its own context, as
on the local backend: since OpenRLHF takes one sequence per executor call, each rollout gets as many calls as it
can have segments (rl/experience.py's ``most_segments``), and the calls its segments leave over carry the prompt
alone, with nothing to learn. What cannot be made equal is refused: the ``mc`` router, ``rl.turn_credit`` and the
``reinforce_baseline`` estimator, whose scale is the whole step's batch, which no executor sees. ``rl.steps``,
``rl.train`` and ``--eval-limit`` do not apply here: the run is ``rounds`` × 2 × ``alternate_every`` steps.

All paths are absolute (a config resolves them), so ``rl.out_dir`` and the models must sit on storage every node
sees. Before anything is submitted, the cluster must have room for the trained agent's GPUs and the partner's. Each
round's job has a submission id of its own (``longshort-<run>-<round>-<attempt>``): a rerun after an interrupted
``ray job submit`` follows the job still running instead of starting a second one, skips a round whose job
succeeded (its ``done`` marker), and resumes a failed one from its DeepSpeed checkpoint (``--ckpt.load_enable``;
one kept per round, removed once the round has succeeded).
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import shlex
import shutil
import sys
from pathlib import Path

from longshort.config import Config
from longshort.protocol import AGENTS


def check(config: Config) -> None:
    cfg = config.rl
    from longshort.routers import ROUTERS

    if ROUTERS[cfg.router].looks_ahead:
        raise ValueError(f"{config.source}: the {cfg.router} router needs batched lookahead on both agents; use "
                         "handoff or alternate with the OpenRLHF backend")
    if cfg.advantage != "grpo":
        raise ValueError(f"{config.source}: rl.advantage {cfg.advantage!r} scales advantages by the whole step's "
                         "batch, which OpenRLHF's executor, seeing one engine's samples, cannot; use grpo")
    if cfg.turn_credit:
        raise ValueError(f"{config.source}: rl.turn_credit needs per-token advantages, which OpenRLHF's executor "
                         "interface does not carry (it takes one reward per sample); set it to 0")
    from longshort.rl.experience import most_segments

    slots = most_segments(config)
    batch, per_pass = cfg.problems_per_step * cfg.samples_per_problem * slots, cfg.micro_batch_size * cfg.num_gpus
    if batch % per_pass:
        folded = f" × {slots} experiences a folding rollout takes (solve.memory.max_rounds + 1)" if slots > 1 else ""
        raise ValueError(f"{config.source}: rl.problems_per_step × samples_per_problem{folded} ({batch}) must be a "
                         f"multiple of micro_batch_size × num_gpus ({per_pass}): DeepSpeed splits each step's samples "
                         "evenly into micro-batches on every GPU")


def prompts_file(config: Config, problems, index: int, path: Path) -> Path:
    """Write the problems of job ``index`` (round × agent), one JSON line each: the question as the prompt, the
    whole problem (JSON text) as the label the agent executor grades with."""
    cfg = config.rl
    order = list(range(len(problems)))
    random.Random(cfg.seed).shuffle(order)
    size = cfg.problems_per_step * cfg.alternate_every
    chosen = [problems[order[(index * size + k) % len(order)]] for k in range(size)]
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for problem in chosen:
            f.write(json.dumps({"prompt": problem.question, "label": json.dumps(problem.to_dict())}) + "\n")
    return path


def agent_file() -> str:
    """rl/openrlhf_agent.py as the job sees it: relative to the working directory when it lies inside it."""
    from longshort.rl import openrlhf_agent

    path = Path(openrlhf_agent.__file__).resolve()
    return os.path.relpath(path) if path.is_relative_to(Path.cwd()) else str(path)


def ppo_command(config: Config, agent: str, actor: str, prompts: Path, run_dir: Path) -> list[str]:
    """``python -m openrlhf.cli.train_ppo_ray`` with the flags of 0.11.2 for one round of ``agent``, from the
    checkpoint ``actor``; the interpreter is this one (the job runs in the environment longshort runs in, at the
    same path on every node)."""
    from longshort.rl.experience import most_segments

    cfg = config.rl
    calls = cfg.samples_per_problem * most_segments(config)  # a prompt's calls to the agent executor
    kl = ["--algo.kl.use_loss", "--algo.kl.estimator", "k3",
          "--ref.num_nodes", "1", "--ref.num_gpus_per_node", str(cfg.num_gpus)] if cfg.kl_coef > 0 else []
    # every turn's prompt is the transcript so far: without the cache each turn prefills it all again (OpenRLHF
    # resets the cache at each weight sync, so no turn reads KV of older weights)
    prefix = ["--vllm.enable_prefix_caching"] if config.model(agent).prefix_reuse else []
    return [
        sys.executable, "-m", "openrlhf.cli.train_ppo_ray",
        "--actor.model_name_or_path", actor,
        "--train.agent_func_path", agent_file(),
        "--data.prompt_dataset", str(prompts),
        "--data.input_key", "prompt",
        "--data.label_key", "label",
        "--data.max_len", str(cfg.max_len),
        "--rollout.batch_size", str(cfg.problems_per_step),
        "--rollout.n_samples_per_prompt", str(calls),
        "--rollout.micro_batch_size", str(cfg.micro_batch_size),
        "--rollout.temperature", str(cfg.temperature),
        "--rollout.top_p", "1.0",
        "--train.batch_size", str(cfg.problems_per_step * calls),
        "--train.micro_batch_size", str(cfg.micro_batch_size),
        "--train.max_epochs", str(cfg.updates_per_step),
        "--train.num_episodes", "1",
        "--train.seed", str(cfg.seed),
        "--algo.advantage.estimator", "flash_reinforce",  # passes our advantages through, see the docstring
        "--algo.kl.init_coef", str(cfg.kl_coef),
        *kl,
        "--actor.adam.lr", str(cfg.learning_rate),
        "--actor.lr_scheduler", "constant",
        "--actor.max_norm", str(cfg.max_grad_norm),
        "--actor.eps_clip", str(cfg.clip),
        "--actor.num_nodes", "1",
        "--actor.num_gpus_per_node", str(cfg.num_gpus),
        "--actor.gradient_checkpointing_enable",
        "--vllm.num_engines", str(cfg.num_gpus),
        "--vllm.tensor_parallel_size", "1",
        "--vllm.gpu_memory_utilization", str(cfg.vllm_memory_utilization),
        *prefix,
        "--vllm.enable_sleep",
        "--train.colocate_all",
        "--ds.enable_sleep",
        "--ds.zero_stage", str(cfg.zero_stage),
        "--ds.param_dtype", "bf16",
        "--ds.attn_implementation", cfg.attn_implementation,
        "--ckpt.output_dir", str(run_dir / "model"),
        "--ckpt.path", str(run_dir / "checkpoints"),
        "--ckpt.save_steps", str(cfg.checkpoint_every),
        "--ckpt.max_num", "1",  # the latest DeepSpeed state, to resume from; removed once the round succeeds
        "--ckpt.load_enable",
        "--logger.logging_steps", "1",
        "--logger.tensorboard_dir", str(run_dir / "tensorboard"),
    ]


def jobs(config: Config, out: Path, problems, write: bool = True) -> list[tuple[Path, list[str]]]:
    """Every round's job in order: (its folder, its ``ray job submit`` command); ``write`` writes the prompt files."""
    from longshort.rl.jobs import job_address, submit_command

    check(config)
    if not Path(config.source).resolve().is_relative_to(Path.cwd()):
        raise ValueError(f"{config.source} lies outside the current folder, which the job uploads as its working "
                         "directory: run from a folder that holds the config")
    address = job_address(config)
    run = hashlib.sha1(str(out.resolve()).encode()).hexdigest()[:8]  # this run's jobs and actors on the cluster
    latest = {agent: config.model(agent).path for agent in AGENTS}
    planned = []
    for index in range(config.rl.rounds * len(AGENTS)):
        round_, agent = divmod(index, len(AGENTS))
        agent, partner = AGENTS[agent], AGENTS[1 - agent]
        run_dir = out / "openrlhf" / f"round{round_ + 1}-{agent}"
        prompts = run_dir / "prompts.jsonl"
        if write:
            prompts_file(config, problems, index, prompts)
        env = {"LONGSHORT_CONFIG": os.path.relpath(config.source), "LONGSHORT_TRAINED": agent,
               "LONGSHORT_PARTNER_PATH": latest[partner],
               "LONGSHORT_PARTNER_ACTOR": f"partner-{run}-{run_dir.name}"}
        command = submit_command(address, Path.cwd(), ppo_command(config, agent, latest[agent], prompts, run_dir), env,
                                 submission_id=f"longshort-{run}-{run_dir.name}-1")
        planned.append((run_dir, command))
        latest[agent] = str(run_dir / "model")
    return planned


def check_fit(config: Config, address: str) -> None:
    """Refuse to submit when the cluster at ``address`` (its dashboard) has no room for the trained agent's
    ``rl.num_gpus`` GPUs and, beside them, the partner's ``num_gpus`` on one node: the partner's actor would wait
    for resources that never come."""
    from ray.util.state import list_nodes

    try:
        alive = [node for node in list_nodes(address=address) if node.state == "ALIVE"]
    except Exception as e:  # the state API raises its own types for a dashboard it cannot reach
        raise ConnectionError(f"cannot list the nodes of the Ray cluster at {address}: {e}") from None
    nodes = [node.resources_total.get("GPU", 0.0) for node in alive]
    trained = config.rl.num_gpus
    for agent, partner in ((AGENTS[0], AGENTS[1]), (AGENTS[1], AGENTS[0])):
        need = config.model(partner).num_gpus
        if not any(gpus >= need and sum(int(g) for g in nodes) - int(gpus) + int(gpus - need) >= trained
                   for gpus in nodes):
            raise ValueError(f"{config.source}: the cluster at {address} has no room for the {partner} partner's "
                             f"{need:g} GPUs on one node beside the {trained} GPUs that train the {agent} agent "
                             f"(rl.num_gpus); its nodes have {', '.join(f'{g:g}' for g in nodes) or 'no'} GPUs")


def launch(config: Config, out: Path, dry_run: bool, log=print) -> list[list[str]]:
    """Run (or, dry, print without writing anything) each round's job in turn; a round whose job succeeded
    before (its ``done`` marker) is skipped, and its DeepSpeed checkpoints (the model's weights and optimizer state,
    about 100 GB for 7B) are removed, since the next round starts from its saved model."""
    from longshort.rl.jobs import job_address, run_job
    from longshort.rl.experience import training_problems
    from longshort.runner import load_shared_tokenizer

    load_shared_tokenizer(config)  # one vocabulary and one chat template for the pair
    planned = jobs(config, out, training_problems(config), write=not dry_run)
    if not dry_run:
        check_fit(config, job_address(config))
    for run_dir, command in planned:
        if dry_run:
            log(shlex.join(command))
            continue
        if (run_dir / "done").exists():
            log(f"skipping {run_dir.name}: its job succeeded before")
            continue
        run_job(command, log)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        (run_dir / "done").write_text("")
    return [command for _, command in planned]
