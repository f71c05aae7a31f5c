"""Cold-start synthesis and SFT on the tiny world, with the real tiny models."""
from __future__ import annotations

import json

import pytest

from longshort.data.coldstart import build_transcript, fold_points, split, synthesize
from longshort.importance import ScoringInput, read_scoring_inputs
from longshort.problem import Problem
from longshort.rl.samples import sft_samples

PROBLEM = Problem("p", "x=1.\nop1: +1.\nFind x modulo m=10.", "2", "synthetic", "synthetic")


@pytest.fixture(scope="module")
def hosted(tiny_config):
    from longshort.runner import start

    return start(tiny_config, use_ray=False)


def test_split_gives_thoughts_over_the_threshold_to_long_and_the_first_always():
    record = {"chunks": [{"text": "a\n\n", "score": -0.1}, {"text": "b", "score": 0.5}, {"text": "c", "score": 0.0},
                         {"text": "d", "status": "past_context"}]}
    assert split(record, 0.0) == [("long", "a"), ("long", "b"), ("short", "c"), ("long", "d")]


def test_transcripts_follow_the_handoff_protocol_and_each_agent_learns_only_its_tokens(hosted):
    tokenizer, protocol = hosted.tokenizer, hosted.protocol
    texts = [("long", "op1: +1. 1+1=2."), ("long", "Check: 1+1=2. Yes."), ("short", "Let me go on."),
             ("short", "Hmm."), ("long", "So x=2.")]
    pieces = [(agent, tokenizer.encode(text, add_special_tokens=False)) for agent, text in texts]
    t = build_transcript(PROBLEM, pieces, tokenizer, protocol)
    assert [(u.agent, u.kind) for u in t.turns] == [("long", "think"), ("short", "think"), ("long", "think"),
                                                   ("short", "think"), ("short", "think"), ("long", "answer")]
    ends = [u.token_ids[-1] for u in t.turns]
    p = protocol
    assert ends == [p.close_id("long"), p.ids["handback"], p.close_id("long"), p.close_id("short"),
                    p.ids["handback"], p.answer_close_id]
    assert t.turns[1].token_ids == [p.ids["handback"]]  # the short agent hands straight back
    for agent in ("long", "short"):
        (sample,) = sft_samples(t, agent)
        trained = [i for i, m in zip(sample.input_ids, sample.loss_mask) if m]
        assert trained == [i for u in t.turns if u.agent == agent for i in u.token_ids]


def test_fold_points_close_a_segment_at_the_thought_that_reaches_the_budget():
    pieces = [("long", [1] * 10), ("short", [1] * 25), ("long", [1] * 50), ("short", [1] * 5), ("long", [1] * 3)]
    assert fold_points(pieces, 30) == [1, 2]


@pytest.fixture(scope="module")
def synthesized(tiny_config, hosted, tmp_path_factory):
    from longshort.rl.coldstart import tiny_inputs, tiny_traces

    # the long model writes the summaries' text for the short agent, the summarizer at inference, to learn
    memory = tiny_config.solve.memory.model_copy(update={"summarizer": "short"})
    config = tiny_config.model_copy(update={
        "coldstart": tiny_config.coldstart.model_copy(update={"traces": 24, "fold_share": 1.0, "segment_tokens": 30,
                                                              "summarizer": "long"}),
        "solve": tiny_config.solve.model_copy(update={"memory": memory})})
    inputs = tiny_inputs(tiny_traces(config))
    wrong = ScoringInput(Problem("wrong", inputs[0].problem.question, inputs[0].problem.answer, "synthetic",
                                 "synthetic"), inputs[0].thinking, prediction="not the answer")
    out = tmp_path_factory.mktemp("coldstart")
    return config, synthesize(config, hosted, inputs + [wrong], out, log=lambda _: None), out


def test_synthesis_writes_transcripts_samples_and_a_manifest(synthesized, hosted):
    from datasets import load_from_disk

    from longshort.transcript import Transcript

    config, data, out = synthesized
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"] == data["manifest"]["counts"]
    assert manifest["counts"]["traces"] == 25 and manifest["counts"]["wrong_answer"] == 1
    assert manifest["counts"]["used"] == 24 and manifest["counts"]["folded"] > 0
    transcripts = [Transcript.from_dict(json.loads(line)) for line in open(out / "transcripts.jsonl")]
    assert len(transcripts) == 48  # each trace unfolded, and again folded
    protocol = hosted.protocol
    for t in transcripts:
        assert t.turns[0].agent == "long" and t.turns[-1].kind == "answer" and t.answer == t.problem.answer
        for u in t.turns:
            if u.kind == "summary":
                assert u.agent == "short"  # the learner's turn, whoever wrote its text
                assert u.token_ids[-1] == protocol.ids["summary_close"] and len(u.token_ids) <= 25
    for agent in ("long", "short"):
        rows = [json.loads(line) for line in open(out / "samples" / agent / "samples.jsonl")]
        assert len(rows) == manifest["samples"][agent]["count"] == len(data["samples"][agent])
        assert sum(sum(r["loss_mask"]) for r in rows) == manifest["samples"][agent]["trained_tokens"]
        dataset = load_from_disk(str(out / "samples" / agent / "dataset"))
        assert dataset[0]["input_ids"] == rows[0]["input_ids"] and len(dataset) == len(rows)


def test_the_steps_rewrite_leaves_the_short_agent_only_the_steps_it_carries_out(synthesized, hosted, tmp_path):
    from longshort.rl.coldstart import tiny_inputs, tiny_traces
    from longshort.transcript import Transcript

    kept_config, kept, _ = synthesized
    config = kept_config.model_copy(update={"coldstart": kept_config.coldstart.model_copy(
        update={"rewrite": "steps", "fold_share": 0.0})})
    generated = tiny_traces(config)
    data = synthesize(config, hosted, tiny_inputs(generated), tmp_path, log=lambda _: None,
                      paragraphs={problem.id: (synthetic, chunks) for problem, synthetic, chunks in generated})
    manifest = data["manifest"]
    assert manifest["thoughts"]["long"] == kept["manifest"]["thoughts"]["long"]  # the same split
    assert manifest["tokens"]["long"] == kept["manifest"]["tokens"]["long"]
    assert manifest["tokens"]["short"] < kept["manifest"]["tokens"]["short"]
    for t in map(Transcript.from_dict, map(json.loads, open(tmp_path / "transcripts.jsonl"))):
        for u in t.turns:
            text = hosted.tokenizer.decode(u.token_ids, skip_special_tokens=True)
            if u.agent == "short" and text:  # else a hand-back tag alone
                assert text.startswith(("op", "So x=")), text
        assert t.answer == t.problem.answer


def test_a_folder_of_another_run_is_refused_unless_overwritten(tiny_config, tmp_path):
    from longshort.rl.coldstart import prepare
    from longshort.runs import RunError

    with prepare(tmp_path, tiny_config, overwrite=False):
        (tmp_path / "scored.jsonl").write_text("{}\n")  # a result of the run
    with prepare(tmp_path, tiny_config, overwrite=False):  # the same run resumes
        assert (tmp_path / "scored.jsonl").exists()
    other = tiny_config.model_copy(update={"coldstart": tiny_config.coldstart.model_copy(update={"threshold": 0.3})})
    with pytest.raises(RunError, match=r"\(coldstart.threshold: 0.0 -> 0.3\): pass --overwrite to replace it"):
        prepare(tmp_path, other, overwrite=False)
    with prepare(tmp_path, other, overwrite=True):
        assert not (tmp_path / "scored.jsonl").exists()


def test_sft_killed_mid_run_resumes_to_the_same_weights(tiny_config, synthesized, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM

    from longshort.rl.sft import train_sft

    samples = synthesized[1]["samples"]["short"]
    kw = dict(steps=12, batch_size=8, learning_rate=1e-3, pad_id=0, seed=3, checkpoint_every=5)

    def fresh():
        return AutoModelForCausalLM.from_pretrained(tiny_config.short.path)

    whole = fresh()
    train_sft(whole, samples, checkpoint_dir=tmp_path / "whole", **kw)

    class Killed(Exception):
        pass

    def die_at_7(step, loss):
        if step == 7:
            raise Killed

    with pytest.raises(Killed):
        train_sft(fresh(), samples, checkpoint_dir=tmp_path / "killed", on_step=die_at_7, **kw)
    resumed = fresh()
    losses = train_sft(resumed, samples, checkpoint_dir=tmp_path / "killed", **kw)
    assert len(losses) == 12
    for (name, a), b in zip(whole.state_dict().items(), resumed.state_dict().values()):
        assert torch.allclose(a, b, atol=1e-6), name


class Planted:
    """A pickle that, when unpickled, writes a file: the attack a training state planted in a run folder makes."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


def test_a_planted_pickle_in_a_run_folder_is_refused_and_never_run(tmp_path):
    import torch

    from longshort.rl.samples import Sample
    from longshort.rl.sft import load_state, train_sft

    marker = tmp_path / "pwned"
    for name in ("checkpoints/long/train_state.pt", "checkpoint/state.pt"):  # cold-start SFT's and RL's states
        planted = tmp_path / name
        planted.parent.mkdir(parents=True)
        torch.save({"steps": 1, "rng": Planted(marker)}, planted)
        with pytest.raises(ValueError, match=f"{planted} is not a training state longshort wrote"):
            load_state(planted)
        assert not marker.exists()
    model = torch.nn.Linear(2, 2)
    with pytest.raises(ValueError, match="train_state.pt is not a training state longshort wrote"):
        train_sft(model, [Sample([1, 2], [0, 1])], steps=2, batch_size=1, learning_rate=1e-3, pad_id=0,
                  checkpoint_dir=tmp_path / "checkpoints" / "long")
    assert not marker.exists()


def test_a_saved_training_state_round_trips_without_pickled_code(tmp_path):
    import random

    import torch

    from longshort.rl.sft import load_state, save_atomically

    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.95))
    schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: 0.5)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    schedule.step()
    rng = random.Random(5)
    state = {"model": model.state_dict(), "optimizer": optimizer.state_dict(), "schedule": schedule.state_dict(),
             "rng": rng.getstate(), "losses": [0.5], "steps": 3, "samples": 4}
    save_atomically(state, tmp_path / "train_state.pt")
    loaded = load_state(tmp_path / "train_state.pt")
    again = random.Random()
    again.setstate(loaded["rng"])
    assert again.random() == rng.random()
    optimizer.load_state_dict(loaded["optimizer"])
    assert torch.equal(optimizer.state_dict()["state"][0]["exp_avg"], state["optimizer"]["state"][0]["exp_avg"])


def test_raw_r1_text_is_cut_at_the_end_of_thinking_and_its_boxed_answer_kept(tmp_path):
    path = tmp_path / "raw.jsonl"
    path.write_text(json.dumps({"id": "r1", "problem": "2+3?", "answer": "5",
                                "thinking": "<think>\nTwo plus three.\n\nSo 5.\n</think>\n\nThus $\\boxed{5}$."}) + "\n")
    (item,) = read_scoring_inputs(path)
    assert item.thinking == "\nTwo plus three.\n\nSo 5.\n" and item.prediction == "5"
