"""Rewards and advantages of synergy RL, written once for every training backend.

The pair shares one reward per transcript: the outcome (right, wrong, or no answer at all), minus a cost per
generated token of each agent (long tokens cost more) and per fold. Advantages are normalized within the group of
samples of one problem, separately for each agent over the samples in which that agent wrote. The OpenRLHF backend
computes them here too (rl/openrlhf_agent.py gathers each problem's samples), so both backends train on the same
advantages.
"""
from __future__ import annotations

import functools
import importlib.util
import math
import statistics
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Callable, Sequence

from longshort.transcript import Transcript

if TYPE_CHECKING:  # the config only types an argument here; the config's validators read ESTIMATORS
    from longshort.config import RewardConfig


class RewardFunctionError(RuntimeError):
    """A user reward function file that cannot be loaded, raises, or returns the wrong thing."""


@dataclass(frozen=True)
class Reward:
    total: float
    outcome: float  # correct / wrong / invalid, or the user function's value
    cost: float  # token and fold costs, already subtracted from total
    correct: bool
    valid: bool  # the transcript ended in an answer


@functools.cache
def load_reward_function(path: str) -> Callable[[list[Transcript]], list[float]]:
    """``reward`` from the Python file ``path`` (loaded once per process), wrapped so that any fault names the
    file. It is called with the transcripts of one step on the local backend, of one problem's samples on OpenRLHF."""
    spec = importlib.util.spec_from_file_location(f"longshort_reward_{Path(path).stem}", path)
    if spec is None or not Path(path).is_file():
        raise RewardFunctionError(f"reward function file {path} does not exist")
    module = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(module)
    except Exception as e:
        raise RewardFunctionError(f"reward function file {path} failed to load: {type(e).__name__}: {e}") from e
    function = getattr(module, "reward", None)
    if not callable(function):
        raise RewardFunctionError(f"reward function file {path} defines no function reward(transcripts)")

    def checked(transcripts: list[Transcript]) -> list[float]:
        try:
            values = function(transcripts)
        except Exception as e:
            raise RewardFunctionError(f"{path}: reward() raised {type(e).__name__}: {e}") from e
        if not isinstance(values, (list, tuple)) or len(values) != len(transcripts):
            got = f"{type(values).__name__} of length {len(values)}" if hasattr(values, "__len__") else repr(values)
            raise RewardFunctionError(f"{path}: reward() must return a list of {len(transcripts)} numbers (one per "
                                      f"transcript), got {got}")
        bad = [v for v in values if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)]
        if bad:
            raise RewardFunctionError(f"{path}: reward() returned {bad[0]!r}; every value must be a finite number")
        return [float(v) for v in values]

    return checked


def rewards(transcripts: Sequence[Transcript], config: RewardConfig) -> list[Reward]:
    from longshort.eval.metrics import correct

    custom = load_reward_function(config.function)(list(transcripts)) if config.function else None
    out = []
    for i, t in enumerate(transcripts):
        valid, right = t.answer is not None, correct(t)
        if not valid:
            outcome = config.invalid
        elif custom is not None:
            outcome = custom[i]
        else:
            outcome = config.correct if right else config.wrong
        cost = (config.long_token_cost * t.tokens("long") + config.short_token_cost * t.tokens("short")
                + config.fold_cost * t.folds)
        out.append(Reward(outcome - cost, outcome, cost, right, valid))
    return out


# Advantage estimators by name (``rl.advantage``): each maps the groups of rewards (one list per problem, the samples
# in which the agent wrote) to their advantages; a new estimator is one decorated function.
ESTIMATORS: dict[str, Callable[[list[list[Reward]]], list[list[float]]]] = {}


def estimator(name: str):
    def register(function):
        ESTIMATORS[name] = function
        return function

    return register


def _centered(group: list[Reward]) -> list[float]:
    mean = sum(r.total for r in group) / len(group)
    return [r.total - mean for r in group]


@estimator("grpo")
def grpo(groups: list[list[Reward]]) -> list[list[float]]:
    """(r - group mean) / the group's spread of outcomes (right, wrong, invalid: not the token costs). A group whose
    outcomes are all equal keeps its centered rewards, its token costs, in reward units: divided by their own
    spread, a few tokens' difference between equally wrong samples would become a full unit of advantage, a
    length-only gradient as strong as being right."""
    out = []
    for group in groups:
        outcomes = [r.outcome for r in group]
        spread = statistics.pstdev(outcomes) if len(set(outcomes)) > 1 else 0.0  # exactly 0 when all are equal
        out.append([c / (spread or 1.0) for c in _centered(group)])
    return out


@estimator("reinforce_baseline")
def reinforce_baseline(groups: list[list[Reward]]) -> list[list[float]]:
    """r - group mean, divided by the root mean square over the whole batch, which keeps groups with near-equal
    rewards from being blown up."""
    centered = [_centered(group) for group in groups]
    flat = [c for group in centered for c in group]
    scale = math.sqrt(sum(c * c for c in flat) / len(flat)) if flat else 0.0
    return [[c / (scale + 1e-6) for c in group] for group in centered]


def advantages(transcripts: Sequence[Transcript], scored: Sequence[Reward], agent: str,
               name: str = "grpo") -> list[float | None]:
    """Per transcript, ``agent``'s advantage (None where it wrote nothing), normalized within its problem's group
    (the transcripts of one problem in which ``agent`` wrote) by the estimator ``name``. A group of one sample, or of
    equal rewards, has advantage 0: it carries no signal."""
    groups: dict[str, list[int]] = defaultdict(list)
    for i, t in enumerate(transcripts):
        if t.tokens(agent):
            groups[t.problem.id].append(i)
    members = list(groups.values())
    result: list[float | None] = [None] * len(transcripts)
    for group, values in zip(members, ESTIMATORS[name]([[scored[i] for i in g] for g in members])):
        for i, value in zip(group, values):
            result[i] = value
    return result

