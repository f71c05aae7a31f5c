"""One step's experience in synergy RL, for both training backends: rollouts through the orchestrator (the ``rl``
router and memory policy), the shared reward, per-agent group-normalized advantages, and each agent's samples."""
from __future__ import annotations

import random
from pathlib import Path

from longshort.config import Config
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
    """RL's problems (training data: their gold answers are the reward), each gold checked readable up front."""
    if config.rl.problems:
        from longshort.grader import check_gold
        from longshort.jsonl import read_problems

        problems = read_problems(config.rl.problems)
        for problem in problems:
            try:
                check_gold(problem.kind, problem.answer)
            except ValueError as e:
                raise ValueError(f"{config.rl.problems}: problem {problem.id}: {e}") from None
        return problems
    if config.tiny is None:
        raise ValueError(f"{config.source}: no 'tiny' section, so set rl.problems to a JSONL of training problems")
    from longshort.data.tiny_world import as_problem, problems

    used, train_set = config.coldstart.traces, problems(config.tiny).train
    if used >= len(train_set):
        raise ValueError(f"{config.source}: cold-start used all {len(train_set)} tiny training problems "
                         f"(coldstart.traces: {used}), so none is left for RL; lower it or set rl.problems")
    return [as_problem(p, used + i) for i, p in enumerate(train_set[used:])]


def rollout_policy(config: Config, step: int, problem_id: str, sample: int) -> str:
    """The memory policy of one rollout: ``rl.policy``, or under Mix-RL one of ``rl.mix`` drawn for this rollout."""
    cfg = config.rl
    if cfg.policy != "mix":
        return cfg.policy
    return random.Random(f"{cfg.seed}:{step}:{problem_id}:{sample}").choice(cfg.mix)


def most_segments(config: Config) -> int:
    """The most RL samples one rollout can yield for an agent: one unfolded; when a rollout may fold (``rl.policy``,
    or a policy of Mix-RL's ``rl.mix``) one per segment, ``solve.memory.max_rounds`` + 1. OpenRLHF's agent
    executor returns one token sequence per call, so each rollout there takes this many calls."""
    from longshort.memory import POLICIES

    folds = any(POLICIES[policy].folds for policy in config.rl.policies)
    return config.solve.memory.max_rounds + 1 if folds else 1


def rollout_settings(config: Config, step: int, policy: str | None = None):
    """The solve and sampling configs of RL rollouts (both backends): the ``rl`` router and memory policy (or
    ``policy``), sampling at ``rl.temperature`` with a seed per step, and no wall-clock limit (``solve.timeout_s``):
    a transcript cut by the clock would earn the ``invalid`` reward for slow infrastructure, not for anything the
    agents wrote. The turn and token budgets bound every rollout (on OpenRLHF, a partner that stops answering fails
    the job instead)."""
    cfg = config.rl
    memory = config.solve.memory.model_copy(update={"policy": policy or cfg.policy})
    solve = config.solve.model_copy(update={"router": cfg.router, "memory": memory, "timeout_s": None})
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
    by_policy: dict[str, list] = {}
    for p in chosen:
        for s in range(cfg.samples_per_problem):
            by_policy.setdefault(rollout_policy(config, step, p.id, s), []).append((p, s))
    transcripts = []
    for policy, todo in by_policy.items():  # one orchestrator per memory policy (Mix-RL: a few)
        solve, sampling = rollout_settings(config, step, policy)
        transcripts += orchestrator(config.model_copy(update={"sampling": sampling}), hosted, solve).solve(todo)
    scored = rewards(transcripts, cfg.reward)
    credits = turn_credits(config, hosted, transcripts) if cfg.turn_credit else [None] * len(transcripts)
    samples = {}
    for agent in AGENTS:
        agent_advantages = advantages(transcripts, scored, agent, cfg.advantage)
        samples[agent] = [s for t, a, c in zip(transcripts, agent_advantages, credits) if a is not None
                          for s in rl_samples(t, agent, a, c)]
    return transcripts, scored, samples


def turn_credits(config: Config, hosted, transcripts) -> list[list[float]]:
    """Per transcript and turn: ``rl.turn_credit`` times the change a think turn made to the chance of a right
    answer (``scoring.rollouts`` answer rollouts before and after it graded against the gold answer, training data
    here, as the importance scorer measures a thought); 0 for other turns and where a state does not fit the
    scoring model."""
    import copy

    from longshort.rollouts import Rollouts

    rollouts = Rollouts(hosted.agents, hosted.tokenizer, hosted.protocol, config.scoring, config.rl.seed)
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
    from longshort.grader import grading_stats

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
        "self_folds": round(sum(t.self_folds for t in transcripts) / n, 3),
        "grading_timeouts": grading_stats()["timeouts"],  # so far in this run's process
    }
