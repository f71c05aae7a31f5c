"""The tiny world is a function of its config: two builds of one seed in one environment give the same tokenizer and
the same weights, bit for bit, so a figure measured on it depends on the seed and the environment, never on the run.
"""
from __future__ import annotations

import hashlib
import json
from importlib.metadata import version
from pathlib import Path

import pytest
import torch

from longshort.config import load_config

REPO = Path(__file__).resolve().parents[2]


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file a build writes but its stamp (which records the build's time)."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != "stamp.json"}


@pytest.mark.heavy
def test_one_seed_builds_the_same_world_twice_and_another_seed_does_not(tmp_path, small_world):
    from longshort.data.tiny_world import build

    first, second, other = (build(small_world(tmp_path / name, seed), log=lambda *_: None)
                            for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    built = digests(first)
    assert {"long/model.safetensors", "short/model.safetensors", "long/tokenizer.json",
            "heldout_traces.jsonl"} <= set(built)
    assert digests(second) == built
    changed = {name for name, digest in digests(other).items() if built.get(name) != digest}
    assert {"long/model.safetensors", "short/model.safetensors", "heldout.jsonl"} <= changed
    environment = json.loads((first / "stamp.json").read_text())["environment"]  # what one seed depends on besides
    assert environment == {**{name: version(name) for name in ("torch", "transformers", "tokenizers", "numpy")},
                           "cpu_capability": torch.backends.cpu.get_cpu_capability()}


@pytest.mark.heavy
def test_seeds_build_one_world_each_beside_the_configured_one_and_report_the_spread(tmp_path, capsys, monkeypatch,
                                                                                         small_world):
    import yaml

    from longshort.cli import main

    config = small_world(tmp_path / "tiny", 0)
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json", exclude={"source"})))
    monkeypatch.chdir(tmp_path)  # the evaluations' transcripts go under runs/
    assert main(["tiny", "--config", str(path), "--seeds", "3", "4", "--limit", "2"]) == 0
    for seed in (3, 4):
        world = tmp_path / f"tiny-seed{seed}"
        assert (world / "long" / "model.safetensors").exists() and (world / "short" / "model.safetensors").exists()
        assert f'"seed": {seed}' in (world / "stamp.json").read_text()
    assert not (tmp_path / "tiny").exists()  # the configured world is left as it is
    table = capsys.readouterr().out
    rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
    assert rows[-4:] == ["| 3", "| 4", "| mean", "| range"], table


def test_another_seeds_world_moves_the_world_and_the_run_folders_and_every_path_inside_them():
    from longshort.data.tiny_world import seed_world

    config = load_config(REPO / "configs" / "tiny.yaml")
    assert seed_world(config, config.tiny.seed) is config
    other = seed_world(config, 2)
    world, coldstart, rl = (Path(p) for p in (config.tiny.out_dir, config.coldstart.out_dir, config.rl.out_dir))
    assert other.tiny.seed == 2 and other.tiny.out_dir == str(world.with_name(world.name + "-seed2"))
    assert other.long.path == str(world.with_name(world.name + "-seed2") / "long")
    assert other.short.path == str(world.with_name(world.name + "-seed2") / "short")
    moved = coldstart.with_name(coldstart.name + "-seed2")
    assert other.coldstart.out_dir == other.rl.init == other.router_training.agents == str(moved)
    assert other.solve.router_path == str(moved / "router")
    assert other.rl.out_dir == str(rl.with_name(rl.name + "-seed2"))
    assert other.tiny.model_dump(exclude={"seed", "out_dir"}) == config.tiny.model_dump(exclude={"seed", "out_dir"})


@pytest.mark.heavy
def test_coldstart_and_rl_over_seeds_train_each_seed_from_its_own_world_and_report_the_spread(
        tmp_path, capsys, monkeypatch, small_world):
    import json

    import yaml

    from longshort.cli import main

    config = small_world(tmp_path / "tiny", 0)
    data = config.model_dump(mode="json", exclude={"source"})
    data["coldstart"] |= {"out_dir": str(tmp_path / "coldstart"), "traces": 6, "long_steps": 2, "short_steps": 2,
                          "batch_size": 4}
    data["rl"] |= {"out_dir": str(tmp_path / "rl"), "init": str(tmp_path / "coldstart"), "steps": 1,
                   "problems_per_step": 2, "samples_per_problem": 2, "micro_batch_size": 4}
    data["solve"] |= {"max_long_tokens": 24, "max_short_tokens": 24, "max_turns": 6}
    path = tmp_path / "small.yaml"
    path.write_text(yaml.safe_dump(data))
    monkeypatch.chdir(tmp_path)
    for command in ("coldstart", "rl"):
        assert main([command, "--config", str(path), "--seeds", "3", "4", "--eval-limit", "2"]) == 0
        tables = capsys.readouterr().out.split("before:\n")[-1].split("after:\n")
        for table in tables:
            rows = [line.split(" | ")[0] for line in table.splitlines() if line.startswith("| ")]
            assert rows[-4:] == ["| 3", "| 4", "| mean", "| range"], table
    for seed in (3, 4):
        world, coldstart = tmp_path / f"tiny-seed{seed}", tmp_path / f"coldstart-seed{seed}"
        assert f'"seed": {seed}' in (world / "stamp.json").read_text()
        assert (coldstart / "long" / "model.safetensors").exists()
        rows = [json.loads(line) for line in open(tmp_path / f"rl-seed{seed}" / "metrics.jsonl")]
        assert [row["step"] for row in rows] == [1]
    assert not (tmp_path / "tiny").exists() and not (tmp_path / "coldstart").exists()


def test_a_two_variable_world_refuses_lossy_summaries_of_one_and_its_problems_read_back():
    from longshort.config import TinyWorldConfig
    from longshort.data.tiny_world import as_problem, from_meta, problems

    with pytest.raises(ValueError, match="lossy_summaries needs variables: 2"):
        TinyWorldConfig(lossy_summaries=0.5)
    tiny = TinyWorldConfig(variables=2, lossy_summaries=0.6, train_problems=300, heldout_problems=20)
    train, heldout = problems(tiny)
    for index, p in enumerate(train + heldout):
        assert from_meta(as_problem(p, index).meta) == p and p.y_start is not None


def test_the_fold_data_of_a_two_variable_world_keeps_only_x_in_its_share_of_summaries(protocol_tokenizer):
    import random

    from longshort.data.synthetic import long_trace, random_problem, summary_text
    from longshort.data.tiny_world import as_problem, chunk_transcript

    tokenizer, protocol = protocol_tokenizer
    rng, lossy, full = random.Random(0), 0, 0
    for index in range(200):
        p = random_problem(rng, 3, 4, variables=2)
        t = chunk_transcript(as_problem(p, index), p, long_trace(p, rng), tokenizer, protocol, rng, lossy=0.6)
        for turn in t.turns:
            if turn.kind == "summary":
                kept = turn.text
                assert kept in {summary_text(p, d) for d in range(len(p.ops) + 1)} | {
                    summary_text(p, d, lossy=True) for d in range(len(p.ops) + 1)}
                lossy, full = lossy + ("y=" not in kept), full + ("y=" in kept)
    assert 0.5 < lossy / (lossy + full) < 0.7
