"""Synergy RL on the tiny world with the real tiny models: a run, resume after a kill, faults, rollout steps."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def rl_config(tiny_yaml, tmp_path):
    """``rl_config(name, rl={...}, **sections)``: a small RL run from the tiny models themselves into
    ``tmp_path/name``."""
    def write(name: str, rl: dict | None = None, **sections) -> str:
        small = {"out_dir": str(tmp_path / name), "init": None, "steps": 4, "problems_per_step": 4,
                 "samples_per_problem": 4, "checkpoint_every": 2, "learning_rate": 1e-3}
        return tiny_yaml({"rl": small | (rl or {}), **sections}, name)

    return write


def longshort(*args, cwd=None, **kwargs):
    return subprocess.Popen([sys.executable, "-m", "longshort.cli", *args], cwd=cwd or REPO, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, **kwargs)


def weights(folder):
    from safetensors.torch import load_file

    return load_file(str(folder / "model.safetensors"))


def test_a_run_trains_both_agents_and_a_killed_run_resumes_to_the_same_result(rl_config, tmp_path):
    import torch

    config = rl_config("whole", {"kl_coef": 0.05})
    whole = longshort("rl", "--config", config, "--eval-limit", "0")
    output = whole.communicate(timeout=600)[0]
    assert whole.returncode == 0, output
    out = tmp_path / "whole"
    rows = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert all(r["trained"] == ["long", "short"] and "long_loss" in r and "short_kl" in r for r in rows)
    assert (out / "reward.png").stat().st_size > 0 and list((out / "tensorboard").iterdir())
    for agent in ("long", "short"):  # both agents moved away from where they started
        start, end = weights(REPO / "artifacts" / "tiny" / agent), weights(out / agent)
        assert any(not torch.equal(start[k], end[k]) for k in start)

    config = rl_config("killed", {"kl_coef": 0.05})
    killed = longshort("rl", "--config", config, "--eval-limit", "0")
    metrics = tmp_path / "killed" / "metrics.jsonl"
    deadline = time.time() + 300
    while time.time() < deadline and killed.poll() is None:  # kill it after step 3, past the step-2 checkpoint
        if metrics.exists() and len(metrics.read_text().splitlines()) >= 3:
            killed.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    killed.wait()
    assert killed.returncode == -signal.SIGKILL
    resumed = longshort("rl", "--config", config, "--eval-limit", "0")
    output = resumed.communicate(timeout=600)[0]
    assert resumed.returncode == 0 and "resuming RL at step 3" in output, output
    again = [json.loads(line) for line in metrics.read_text().splitlines()]
    assert [r["step"] for r in again] == [1, 2, 3, 4]  # step 3 was redone once, not written twice
    assert [r["reward"] for r in again] == [r["reward"] for r in rows]
    for agent in ("long", "short"):
        a, b = weights(out / agent), weights(tmp_path / "killed" / agent)
        assert all(torch.allclose(a[k], b[k], atol=1e-6) for k in a)


def test_alternate_training_moves_one_agent_per_round_and_folded_rollouts_train_per_segment(rl_config, tmp_path):
    from longshort.config import load_config
    from longshort.rl.experience import rollout_step
    from longshort.rl.experience import training_problems
    from longshort.rl.synergy import train_rl
    from longshort.runner import start

    path = rl_config("alt", {"steps": 2, "train": "alternate", "alternate_every": 1, "policy": "fold-restart"},
                     solve={"memory": {"segment_budget": 12, "fold_after": 8}})  # fold often
    config = load_config(path)
    rows = train_rl(config, tmp_path / "alt", log=lambda *_: None)
    assert [r["trained"] for r in rows] == [["long"], ["short"]]
    assert "short_loss" not in rows[0] and "long_loss" not in rows[1]
    assert all(r["folds"] > 0 for r in rows)

    transcripts, _, samples = rollout_step(config, start(config, use_ray=False), training_problems(config), 5)
    assert any(t.folds for t in transcripts)
    for agent in ("long", "short"):  # one sample per segment the agent wrote in, its context what it saw there
        wrote_in = sum(len({u.segment for u in t.turns if u.agent == agent}) for t in transcripts)
        assert len(samples[agent]) == wrote_in


def test_turn_credit_adds_each_think_turns_change_in_the_chance_of_a_right_answer(rl_config, tmp_path):
    from longshort.config import load_config
    from longshort.rl.experience import rollout_step, turn_credits
    from longshort.rl.experience import training_problems
    from longshort.runner import start

    config = load_config(rl_config("credit", {"turn_credit": 0.5}))
    hosted = start(config, use_ray=False)
    transcripts, _, samples = rollout_step(config, hosted, training_problems(config), 0)
    credits = turn_credits(config, hosted, transcripts)  # seeded: the same estimates again
    assert any(c for cs in credits for c in cs)
    for transcript, cs in zip(transcripts, credits):
        assert all(c == 0 for c, turn in zip(cs, transcript.turns) if turn.kind != "think")
        assert all(abs(c) <= 0.5 for c in cs)
    # within a sample, the advantage now differs from turn to turn (in whichever agent's turns the credit fell)
    assert any(len({a for a, m in zip(s.advantages, s.action_mask) if m}) > 1
               for s in samples["long"] + samples["short"])


def test_rl_problems_are_the_tiny_training_problems_cold_start_left_and_none_left_is_named(tiny_config):
    from longshort.rl.experience import training_problems

    left = training_problems(tiny_config)
    assert len(left) == tiny_config.tiny.train_problems - tiny_config.coldstart.traces
    assert left[0].id == f"synthetic-{tiny_config.coldstart.traces:05d}"
    all_used = tiny_config.model_copy(update={"coldstart": tiny_config.coldstart.model_copy(
        update={"traces": tiny_config.tiny.train_problems})})
    with pytest.raises(ValueError, match="none is left for RL; lower it or set rl.problems"):
        training_problems(all_used)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(rl_config, tmp_path):
    import torch

    config = rl_config("nan", {"learning_rate": 1e30, "checkpoint_every": 1, "steps": 6})
    run = longshort("rl", "--config", config, "--eval-limit", "0")
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 2 and "the loss is nan" in output, output
    failed = int(output.split("the loss is nan at step ")[1].split()[0])
    state = torch.load(tmp_path / "nan" / "checkpoint" / "state.pt", weights_only=True)
    assert state["step"] == failed - 1
    rows = (tmp_path / "nan" / "metrics.jsonl").read_text().splitlines()
    assert len(rows) == failed - 1


def test_a_broken_reward_function_stops_the_run_naming_its_file(rl_config, tmp_path):
    bad = tmp_path / "reward_fn.py"
    bad.write_text("def reward(transcripts):\n    return {'score': 1}\n")
    config = rl_config("badreward", {"reward": {"function": str(bad)}})
    run = longshort("rl", "--config", config, "--eval-limit", "0")
    output = run.communicate(timeout=600)[0]
    assert run.returncode == 2 and f"{bad}: reward() must return a list of 16 numbers" in output, output


def test_rl_submitted_as_a_ray_job_to_a_local_head_node_runs(rl_config, tmp_path, ray_head):
    """`ray start --head` on loopback, then `longshort rl --submit`: the run happens inside the Ray job."""
    config = rl_config("run", {"steps": 2})
    submitted = longshort("rl", "--config", config, "--eval-limit", "0", "--submit", ray_head)
    output = submitted.communicate(timeout=600)[0]
    assert submitted.returncode == 0, output
    assert "ray job submit --address" in output and "succeeded" in output
    rows = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()
    assert [json.loads(r)["step"] for r in rows] == [1, 2]


def test_mix_rl_draws_a_memory_policy_per_rollout_and_the_fold_gap_is_measured_along_the_way(rl_config, tmp_path):
    from longshort.config import load_config
    from longshort.rl.experience import rollout_step, training_problems
    from longshort.rl.synergy import run
    from longshort.runner import start

    path = rl_config("mix", {"steps": 2, "policy": "mix", "gap_every": 1, "gap_problems": 6},
                     solve={"memory": {"segment_budget": 12, "fold_after": 8}})
    config = load_config(path)
    transcripts, _, samples = rollout_step(config, start(config, use_ray=False), training_problems(config), 0)
    assert {t.memory for t in transcripts} == {"fold-append", "unfold-summaries"}
    assert any(t.folds for t in transcripts if t.memory == "unfold-summaries")  # summaries written, kept in context
    result = run(config, eval_limit=3, log=lambda *_: None)
    gaps = [json.loads(line) for line in (tmp_path / "mix" / "gap.jsonl").read_text().splitlines()]
    assert [g["step"] for g in gaps] == [0, 1, 2]
    for gap in gaps:
        assert gap["fold_gap"] == pytest.approx(gap["unfold_accuracy"] - gap["fold_accuracy"])
    rows = [json.loads(line) for line in (tmp_path / "mix" / "metrics.jsonl").read_text().splitlines()]
    assert all("fold_gap" in row for row in rows) and (tmp_path / "mix" / "reward.png").stat().st_size > 0
    # the pair is evaluated before and after under each policy of the mix
    assert set(result["change"]) == {"handoff/fold-append", "handoff/unfold-summaries"}
    assert set(result["after"]) >= set(result["change"])


def test_rl_rollouts_have_no_wall_clock_limit(rl_config):
    """Slow infrastructure must not turn into the invalid reward: RL rollouts (both backends) leave solve.timeout_s
    aside, their turn and token budgets bounding them, however slow the agents are."""
    from longshort.config import load_config
    from longshort.rl.experience import rollout_step, training_problems
    from longshort.runner import start

    path = rl_config("clock", {"problems_per_step": 2, "samples_per_problem": 2},
                     solve={"timeout_s": 1e-6})  # slower agents than this are everywhere
    config = load_config(path)
    transcripts, scored, _ = rollout_step(config, start(config, use_ray=False), training_problems(config), 0)
    assert len(transcripts) == 4 and not any(t.stop_reason == "timeout" for t in transcripts)
    assert any(r.valid for r in scored)
