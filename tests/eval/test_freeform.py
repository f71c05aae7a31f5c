"""Free-form baselines: a model answering alone in its own text format, graded from text, in the same tables as the
pair; a reasoning model thinks in its tags first."""
from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from longshort.config import Config, ModelConfig, SamplingConfig, TextFormat
from longshort.eval.modes import FreeMode, mode_file, mode_of, mode_table
from longshort.problem import Problem

REPO = Path(__file__).resolve().parents[2]


def config_with(**baselines) -> Config:
    return Config(long=ModelConfig(path="a"), short=ModelConfig(path="a", format="text"),
                  baselines={name: ModelConfig(path=path, format="text") for name, path in baselines.items()})


def test_free_modes_name_baselines_and_text_agents_only():
    config = config_with(r1=".", qwen=".")
    table = mode_table(config, "long,free,free:short")
    assert list(table) == ["long", "free:r1", "free:qwen", "free:short"]
    assert table["free:r1"] == FreeMode("r1") and table["free:r1"].router == "free:r1"
    assert mode_file("free:r1") == "free-r1.jsonl"
    with pytest.raises(ValueError, match="the long model speaks the protocol"):
        mode_table(config, "free:long")
    with pytest.raises(ValueError, match="unknown free-form model 'r2'; known: free:r1, free:qwen"):
        mode_table(config, "free:r2")
    with pytest.raises(ValueError, match="baselines.r1: a free-form baseline answers in its own format"):
        Config(long=ModelConfig(path="a"), short=ModelConfig(path="a"), baselines={"r1": ModelConfig(path=".")})


def test_a_reasoning_baseline_thinks_then_answers_and_is_graded_from_its_text(protocol_tokenizer, scripted):
    from longshort.chat import ChatFormat
    from longshort.eval.metrics import correct
    from longshort.freeform import FreeForm
    from longshort.transcript import Transcript

    tok = copy.deepcopy(protocol_tokenizer[0])
    tok.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]}, replace_extra_special_tokens=False)
    chat = ChatFormat.of(ModelConfig(path="r1", format="text", text=TextFormat(reasoning=True)), tok, "r1")
    close = tok.convert_tokens_to_ids("</think>")
    replies = {"x=1": "1+1=2.</think>So x=\\boxed{2}.", "x=2": "2+2=4 " + "and on " * 40, "x=3": "3+3=6."}

    def reply(request):
        question = next(q for q in replies if q in tok.decode(request.prompt_ids))
        return tok.encode(replies[question], add_special_tokens=False) + [tok.eos_token_id]

    agent = scripted(reply, eos=tok.eos_token_id)
    free = FreeForm("r1", agent, tok, chat, 60, SamplingConfig(temperature=0.0), concurrency=8)
    problems = [Problem(q, f"{q}.\nop1: +{q[-1]}.\nFind x modulo m=10.", a, "t", "math")
                for q, a in (("x=1", "2"), ("x=2", "4"), ("x=3", "6"))]
    done = {t.problem.id: t for t in free.solve(problems)}
    assert agent.calls == [3], "one batched call"
    first = done["x=1"]
    assert first.prompt_ids[-1] == tok.convert_tokens_to_ids("<think>"), "the thinking is opened"
    assert (first.stop_reason, first.answer, first.router, mode_of(first)) == ("answered", "So x=\\boxed{2}.",
                                                                            "free:r1", "free:r1")
    assert [(u.agent, u.kind) for u in first.turns] == [("long", "answer")] and close in first.turns[0].token_ids
    assert correct(first) and first.tokens("long") == len(first.turns[0].token_ids)
    assert done["x=2"].stop_reason == "budget" and done["x=2"].answer is None, "cut by its 60 tokens"
    assert done["x=3"].stop_reason == "malformed" and "without ending its thinking" in done["x=3"].error
    again = Transcript.from_dict(json.loads(json.dumps(first.to_dict())))
    assert mode_of(again) == "free:r1" and again.turns[0].token_ids == first.turns[0].token_ids


def test_eval_puts_the_free_form_baseline_beside_the_pair_on_gsm8k(smollm2_path, shared_file, tmp_path):
    """SmolLM2-135M-Instruct as both agents (in its text format) and as a baseline: one `longshort eval` command."""
    import yaml

    from longshort.eval.run_benchmarks import main

    model = {"path": smollm2_path, "format": "text"}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump({"long": model, "short": model, "baselines": {"smol": model},
                                                     "sampling": {"temperature": 0.0}}))
    out = tmp_path / "run"
    args = ["--config", str(tmp_path / "c.yaml"), "--benchmarks", "gsm8k", "--modes", "handoff/unfold,free",
            "--limit", "2", "--max-tokens", "48", "--data", str(shared_file("benchmarks/gsm8k.jsonl").parent),
            "--output", str(out), "--no-ray"]
    assert main(args) == 0
    summary = json.loads((out / "summary.json").read_text())
    rows = summary["results"]["gsm8k"]
    assert set(rows) == {"handoff/unfold", "free:smol"} and summary["modes"]["free:smol"]["router"] == "free:smol"
    assert rows["free:smol"]["samples"] == 2 and rows["free:smol"]["turns"] == 1
    assert rows["handoff/unfold"]["pass@1"] == 0, "before SFT the pair cannot speak the protocol"
    free = [json.loads(line) for line in open(out / "transcripts" / "gsm8k" / "free-smol.jsonl")]
    assert all(t["turns"][0]["forced_ids"] == [] and t["stop_reason"] in ("answered", "budget") for t in free)
    assert "free:smol" in (out / "report.md").read_text()


def test_a_reasoning_baselines_transcripts_are_cold_start_traces(protocol_tokenizer, scripted, tmp_path, capsys):
    """`longshort solve --free NAME` output read back as traces: the thinking, and the answer after it."""
    from longshort.chat import ChatFormat
    from longshort.freeform import FreeForm
    from longshort.importance import read_scoring_inputs

    tok = copy.deepcopy(protocol_tokenizer[0])
    tok.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]}, replace_extra_special_tokens=False)
    chat = ChatFormat.of(ModelConfig(path="r1", format="text", text=TextFormat(reasoning=True)), tok, "r1")
    replies = {"a": "Two and two.\n\nFour.</think>It is \\boxed{4}.", "b": "Still thinking"}
    agent = scripted(lambda r: tok.encode(replies["a" if "x=1" in tok.decode(r.prompt_ids) else "b"],
                                          add_special_tokens=False) + [tok.eos_token_id], eos=tok.eos_token_id)
    free = FreeForm("r1", agent, tok, chat, 60, SamplingConfig(temperature=0.0), concurrency=8)
    done = free.solve([Problem("a", "x=1. 2+2?", "4", "t", "math"), Problem("b", "x=2. 3+3?", "6", "t", "math")])
    path = tmp_path / "traces.jsonl"
    path.write_text("".join(json.dumps(t.to_dict()) + "\n" for t in done))
    (item,) = read_scoring_inputs(path, skip_bad=True)
    assert (item.problem.id, item.thinking, item.prediction) == ("a", "Two and two.\n\nFour.", "4")
    assert "trace b: not a finished free-form transcript" in capsys.readouterr().err
