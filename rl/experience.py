"""One step's experience in synergy RL, for both training backends: rollouts through the orchestrator (the ``rl``
router and memory policy), the shared reward, per-agent group-normalized advantages, and each agent's samples."""
from __future__ import annotations

import math
import random

from longshort.config import Config
from longshort.problem import Problem
from longshort.protocol import AGENTS


def rollout_settings(config: Config, step: int):
    """The solve and sampling configs of RL rollouts (both backends): the ``rl`` router and memory policy, sampling at
    ``rl.temperature`` with a seed per step, and no wall-clock limit (``solve.timeout_s``): a transcript cut by the
    clock would earn the ``invalid`` reward for slow infrastructure, not for anything the agents wrote. The turn and
    token budgets bound every rollout (on OpenRLHF, a partner that stops answering fails the job instead)."""
    cfg = config.rl
    memory = config.solve.memory.model_copy(update={"policy": cfg.policy})
    solve = config.solve.model_copy(update={"router": cfg.router, "memory": memory, "timeout_s": math.inf})
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
    credits = turn_credits(config, hosted, transcripts) if cfg.turn_credit else [None] * len(transcripts)
    samples = {}
    for agent in AGENTS:
        agent_advantages = advantages(transcripts, scored, agent, cfg.advantage)
        samples[agent] = [s for t, a, c in zip(transcripts, agent_advantages, credits) if a is not None
                          for s in rl_samples(t, agent, a, c)]
    return transcripts, scored, samples


def turn_credits(config: Config, hosted, transcripts) -> list[list[float]]:
    """Per transcript and turn: ``rl.turn_credit`` times the change a think turn made to the chance of a right
    answer (``scoring.rollouts`` answer rollouts before and after it, as the importance scorer measures a thought);
    0 for other turns and where a state does not fit the scoring model."""
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
