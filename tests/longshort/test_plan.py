"""`longshort plan`: every shipped config resolves to a consistent plan; an inconsistent edit is refused with each
problem named."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from longshort.cli import main
from longshort.config import load_config

REPO = Path(__file__).resolve().parents[2]
REAL = ["qwen2.5-7b.yaml", "llama3.1-8b.yaml"]


@pytest.mark.parametrize("name", sorted(p.name for p in (REPO / "configs").glob("*.yaml")))
def test_every_shipped_config_has_a_consistent_plan(name, capsys):
    assert main(["plan", "--config", str(REPO / "configs" / name)]) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    for section in ("models:", "budgets:", "worst-case context:", "stages:", "GPUs:"):
        assert section in out


@pytest.mark.parametrize("name", REAL)
def test_real_configs_are_sized_for_real_work(name, capsys):
    from longshort.config import load_config

    config = load_config(REPO / "configs" / name)
    assert config.long.path == config.short.path and config.long.format == "text", "one pretrained base"
    assert any(m.text.reasoning for m in config.baselines.values()), "an R1-Distill baseline and trace source"
    assert config.solve.max_long_tokens >= 8192 and config.solve.chunk_tokens >= config.chunking.max_tokens
    assert config.solve.memory.segment_budget >= 2048 and config.solve.memory.summary_cap >= 256
    assert config.coldstart.learning_rate <= 2e-5 and config.rl.learning_rate <= 1e-5
    assert config.coldstart.rewrite == "short" and config.coldstart.threshold > 0
    assert config.chunking.min_tokens >= 128 and config.scoring.rollouts >= 8
    main(["plan", "--config", str(REPO / "configs" / name)])
    out = capsys.readouterr().out
    assert "--free r1-distill" in out and "RL: 7 for the agent being trained" in out


def edited(tmp_path, name: str, **changes) -> str:
    data = yaml.safe_load((REPO / "configs" / name).read_text())
    for key, value in changes.items():
        *sections, leaf = key.split("__")
        part = data
        for section in sections:
            part = part.setdefault(section, {})
        part[leaf] = value
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return str(path)


def test_an_inconsistent_config_is_refused_with_each_problem_named(tmp_path, capsys):
    path = edited(tmp_path, "qwen2.5-7b.yaml", solve__max_turns=64, solve__memory__segment_budget=40000,
                  solve__memory__fold_after=40000, coldstart__segment_tokens=40000, coldstart__rewrite="keep",
                  scoring__continue_tokens=100, long__text={"answer_prompt": "x"}, rl__max_len=8192,
                  rl__gap_every=10)
    data = yaml.safe_load(Path(path).read_text())
    data["long"]["format"] = "protocol"
    Path(path).write_text(yaml.safe_dump(data))
    assert main(["plan", "--config", path]) == 2
    err = capsys.readouterr().err
    assert "solve.max_turns (64) cannot hold a cold-start transcript" in err
    assert "fold-restart: a transcript can need 42048 tokens of context" in err and "more than long's 32768" in err
    assert "coldstart.rewrite_prompt" not in err, "only keys the file sets"
    for dead in ("coldstart.rewrite_tokens has no effect: coldstart.rewrite is keep",
                 "scoring.continue_tokens has no effect: scoring.policy is answer",
                 "long.text has no effect: the model speaks the protocol",
                 "rl.max_len (8192) cannot hold a whole unfold sample",
                 "rl.gap_every has no effect: rl.backend is openrlhf"):
        assert dead in err, dead


def test_turns_are_counted_on_the_traces_when_given(tmp_path, shared_file, smollm2_path, capsys):
    path = edited(tmp_path, "smollm2.yaml", long__path=smollm2_path, short__path=smollm2_path, solve__max_turns=40)
    traces = str(shared_file("traces/limo_r1_distill_qwen32b.jsonl"))
    assert main(["plan", "--config", path, "--traces", traces]) == 2
    assert f"thoughts (the most in 200 traces of {traces})" in capsys.readouterr().err


def test_turns_of_a_tiny_world_not_built_yet_are_counted_on_the_traces_it_will_build(tmp_path, capsys):
    from longshort.data.tiny_world import heldout_traces, problems

    path = edited(tmp_path, "tiny-v2.yaml", tiny__out_dir=str(tmp_path / "unbuilt"), solve__max_turns=20)
    assert main(["plan", "--config", path]) == 2
    config = load_config(path)
    most = max(map(len, heldout_traces(config.tiny, problems(config.tiny).heldout)))
    assert f"{most} thoughts (the most paragraphs in the 200 held-out traces it will build)" in capsys.readouterr().err
    assert not (tmp_path / "unbuilt").exists()


def test_self_folds_need_the_data_to_close_steps_before_the_hard_cap(tiny_config, tmp_path, capsys):
    """With folds: self the writer folds where its steps end, so the data's segments may be shorter than the hard
    cap (configs/tiny-self-folds.yaml), never longer."""
    world = {"long__path": tiny_config.long.path, "short__path": tiny_config.short.path,
             "tiny__out_dir": tiny_config.tiny.out_dir}  # the built world, whose traces the plan counts turns on
    fits = edited(tmp_path, "tiny-self-folds.yaml", coldstart__segment_tokens=56, **world)
    assert main(["plan", "--config", fits]) == 0, capsys.readouterr().err
    capsys.readouterr()
    past = edited(tmp_path, "tiny-self-folds.yaml", coldstart__segment_tokens=57, **world)
    assert main(["plan", "--config", past]) == 2
    assert "coldstart.segment_tokens (57) exceeds solve.memory.segment_budget (56)" in capsys.readouterr().err
