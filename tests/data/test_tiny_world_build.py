"""The tiny world is a function of its config: two builds of one seed in one environment give the same tokenizer and
the same weights, bit for bit, so a figure measured on it depends on the seed and the environment, never on the run.
"""
from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from longshort.config import TinyModelConfig, load_config

REPO = Path(__file__).resolve().parents[2]
SMALL_MODEL = TinyModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, steps=12)


def small_world(out: Path, seed: int):
    """configs/tiny.yaml's world, shrunk to seconds: 300 problems, one-layer models, a dozen steps."""
    config = load_config(REPO / "configs" / "tiny.yaml")
    tiny = config.tiny.model_copy(update={"out_dir": str(out), "seed": seed, "train_problems": 300,
                                          "heldout_problems": 10, "long_model": SMALL_MODEL,
                                          "short_model": SMALL_MODEL, "batch_size": 8})
    return config.model_copy(update={"tiny": tiny})


def digests(folder: Path) -> dict[str, str]:
    """SHA-256 of every file a build writes but its stamp (which records the build's time)."""
    return {str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
            for path in sorted(folder.rglob("*")) if path.is_file() and path.name != "stamp.json"}


@pytest.mark.heavy
def test_one_seed_builds_the_same_world_twice_and_another_seed_does_not(tmp_path):
    from longshort.data.tiny_world import build

    first, second, other = (build(small_world(tmp_path / name, seed), log=lambda *_: None)
                            for name, seed in (("a", 0), ("b", 0), ("c", 1)))
    built = digests(first)
    assert {"long/model.safetensors", "short/model.safetensors", "long/tokenizer.json",
            "heldout_traces.jsonl"} <= set(built)
    assert digests(second) == built
    changed = {name for name, digest in digests(other).items() if built.get(name) != digest}
    assert {"long/model.safetensors", "short/model.safetensors", "heldout.jsonl"} <= changed


@pytest.mark.heavy
def test_seeds_build_one_world_each_beside_the_configured_one_and_report_the_spread(tmp_path, capsys, monkeypatch):
    import yaml

    from longshort.cli import main

    config = small_world(tmp_path / "tiny", 0)
    config = config.model_copy(update={agent: config.model(agent).model_copy(
        update={"path": str(tmp_path / "tiny" / agent)}) for agent in ("long", "short")})
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
