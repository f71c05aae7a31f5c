"""Before/after tables for any config: on the benchmark eval.heldout names, each agent in the format it speaks,
the pair once both speak the protocol, and the baselines solved once and shown in both."""
from __future__ import annotations

import pytest

from longshort.config import Config, ModelConfig
from longshort.eval.run_benchmarks import before_after, heldout_benchmark, stage_modes


def test_each_stage_shows_what_its_models_can_do():
    text = ModelConfig(path="base", format="text")
    before = Config(long=text, short=text)
    assert stage_modes(before, ["handoff/unfold"]) == "free:long", "one base model, in its own format"
    other = ModelConfig(path="small", format="text")
    assert stage_modes(Config(long=text, short=other), ["handoff/unfold"]) == "free:long,free:short"
    assert stage_modes(Config(long=text, short=text, baselines={"base": text}), ["handoff/unfold"]) == "", \
        "a baseline of the same model already shows it"
    after = before.with_model_paths({"long": "trained/long", "short": "trained/short"})
    assert stage_modes(after, ["handoff/unfold", "handoff/fold-restart"]) == \
        "long,short,handoff/unfold,handoff/fold-restart"
    with pytest.raises(ValueError, match="set eval.heldout .* or pass --eval-limit 0"):
        heldout_benchmark(before)


def test_a_config_without_a_tiny_world_gets_its_tables_with_the_baselines_solved_once(tiny_config, smollm2_path,
                                                                                      shared_file, tmp_path):
    """The tiny pair as 'before' and 'after' on a GSM8K slice, SmolLM2 (its own tokenizer, its text format) as the
    baseline beside it."""
    data = str(shared_file("benchmarks/gsm8k.jsonl").parent)
    config = tiny_config.model_copy(update={
        "tiny": None, "eval": tiny_config.eval.model_copy(update={"heldout": "gsm8k", "data": data}),
        "baselines": {"smol": ModelConfig(path=smollm2_path, format="text")},
        "solve": tiny_config.solve.model_copy(update={"max_long_tokens": 24, "max_short_tokens": 24})})
    logged = []
    rows = before_after(config, config, 2, tmp_path, ["handoff/unfold"], logged.append)
    assert list(rows["before"]) == ["long", "short", "handoff/unfold", "free:smol"]
    assert list(rows["after"]) == ["long", "short", "handoff/unfold", "free:smol"]
    assert rows["after"]["free:smol"] == rows["before"]["free:smol"] and rows["before"]["free:smol"]["samples"] == 2
    before, after = (tmp_path / stage / "transcripts" / "gsm8k" / "free-smol.jsonl" for stage in ("before", "after"))
    assert before.read_text() == after.read_text(), "solved once, carried into the after run"
    assert "free:smol" in (tmp_path / "after" / "report.md").read_text()
    assert "| gsm8k | free:smol |" in logged[-1] and logged[-1].startswith("after:")
