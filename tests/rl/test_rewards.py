"""Rewards and advantages: the pieces both training backends share."""
from __future__ import annotations

import math

import pytest

from longshort.config import RewardConfig
from longshort.problem import Problem
from longshort.rl.rewards import RewardFunctionError, advantages, load_reward_function, rewards
from longshort.transcript import Transcript, Turn


def transcript(problem_id: str, answer: str | None, long_tokens: int, short_tokens: int, sample: int = 0,
               folds: int = 0) -> Transcript:
    problem = Problem(problem_id, "q", "7", "synthetic", "synthetic")
    turns = []
    if long_tokens:
        turns.append(Turn("long", "think", [901], [5] * long_tokens, [-0.5] * long_tokens, "stop"))
    if short_tokens:
        turns.append(Turn("short", "think", [902], [6] * short_tokens, [-0.25] * short_tokens, "stop"))
    turns += [Turn("short", "summary", [903], [7], [-0.1], "stop", segment=i) for i in range(folds)]
    stop = "answered" if answer is not None else "malformed"
    return Transcript(problem, [1, 2, 3], sample=sample, turns=turns, answer=answer, stop_reason=stop)


def test_reward_is_the_outcome_minus_token_and_fold_costs():
    config = RewardConfig(correct=1.0, wrong=-0.2, invalid=-1.0, long_token_cost=0.01, short_token_cost=0.001,
                          fold_cost=0.05)
    right, wrong, broken = rewards([transcript("a", "7", 10, 20, folds=1), transcript("a", "8", 10, 0),
                                    transcript("a", None, 0, 5)], config)
    assert right.correct and right.valid and right.total == pytest.approx(1.0 - 0.1 - 0.02 - 0.05 - 0.001)
    assert not wrong.correct and wrong.total == pytest.approx(-0.2 - 0.1)
    assert not broken.valid and broken.outcome == -1.0 and broken.total == pytest.approx(-1.0 - 0.005)


def test_advantages_are_normalized_per_problem_and_only_for_samples_the_agent_wrote_in():
    ts = [transcript("a", "7", 5, 5, 0), transcript("a", "8", 5, 5, 1), transcript("a", "7", 0, 5, 2),
          transcript("b", "7", 5, 5, 0), transcript("b", "7", 5, 5, 1)]
    scored = rewards(ts, RewardConfig(long_token_cost=0.0, short_token_cost=0.0))
    long = advantages(ts, scored, "long")
    assert long[2] is None  # the long agent wrote nothing there
    assert long[0] == pytest.approx(1.0) and long[1] == pytest.approx(-1.0)
    assert long[3] == long[4] == 0.0  # equal rewards carry no signal
    short = advantages(ts, scored, "short")
    mean, std = 2 / 3, math.sqrt(2 / 9)
    assert short[:3] == pytest.approx([(v - mean) / std for v in (1.0, 0.0, 1.0)])
    baseline = advantages(ts, scored, "short", "reinforce_baseline")
    centered = [1 / 3, -2 / 3, 1 / 3, 0.0, 0.0]
    scale = math.sqrt(sum(c * c for c in centered) / 5)
    assert baseline == pytest.approx([c / scale for c in centered], abs=1e-4)


def test_a_group_of_equal_outcomes_carries_its_token_costs_unscaled():
    """All wrong, differing only in length: the advantages are the centered token costs in reward units, not
    blown up by their own small spread into a length-only gradient as strong as being right."""
    config = RewardConfig(long_token_cost=0.001)
    wrong = [transcript("a", "8", n, 5, sample) for sample, n in enumerate((10, 20, 30, 40))]
    long = advantages(wrong, rewards(wrong, config), "long")
    assert long == pytest.approx([0.015, 0.005, -0.005, -0.015])
    mixed = wrong[:3] + [transcript("a", "7", 40, 5, 3)]  # one right: the outcomes' spread scales the rewards
    scored = rewards(mixed, config)
    mean, spread = sum(r.total for r in scored) / 4, math.sqrt(3) / 4
    assert advantages(mixed, scored, "long") == pytest.approx([(r.total - mean) / spread for r in scored])


def write(tmp_path, body: str, name: str = "my_reward") -> str:
    path = tmp_path / f"{name}.py"  # one file per body: a file is loaded once per process
    path.write_text(body)
    return str(path)


def test_a_reward_function_file_replaces_the_outcome_and_its_faults_name_the_file(tmp_path):
    good = write(tmp_path, "def reward(transcripts):\n    return [len(t.problem.id) for t in transcripts]\n")
    (r,) = rewards([transcript("abc", "8", 0, 0)], RewardConfig(function=good))
    assert r.outcome == 3.0 and not r.correct
    cases = {
        "def reward(transcripts):\n    raise KeyError('gold')\n": "raised KeyError",
        "def reward(transcripts):\n    return [1.0, 2.0]\n": "list of 1 numbers",
        "def reward(transcripts):\n    return 1.0\n": "got 1.0",
        "def reward(transcripts):\n    return [float('nan')]\n": "finite number",
        "def score(transcripts):\n    return [1.0]\n": "defines no function reward",
        "def reward(:\n": "failed to load",
    }
    for number, (body, message) in enumerate(cases.items()):
        path = write(tmp_path, body, f"my_reward_{number}")
        with pytest.raises(RewardFunctionError, match=message) as error:
            load_reward_function(path)([transcript("abc", "8", 0, 0)])
        assert f"my_reward_{number}.py" in str(error.value)
    with pytest.raises(RewardFunctionError, match="does not exist"):
        load_reward_function(str(tmp_path / "missing.py"))
