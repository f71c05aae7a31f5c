"""The text-native path on a real pretrained model that has never seen the protocol tags: SmolLM2-135M-Instruct in
its own chat format, prompted, rolled out and graded from text."""
from __future__ import annotations

import json

import pytest

from longshort.chat import ChatFormat, FormatError
from longshort.config import ModelConfig, ScoringConfig, TextFormat
from longshort.problem import Problem


@pytest.fixture(scope="module")
def tokenizer(smollm2_path):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(smollm2_path)


def text_model(path: str, **text) -> ModelConfig:
    return ModelConfig(path=path, format="text", text=TextFormat(**text))


def test_an_instruct_model_is_prompted_through_its_chat_template(tokenizer, smollm2_path):
    chat = ChatFormat.of(text_model(smollm2_path, prompt="Solve: {question}"), tokenizer, "long")
    ids = chat.prompt(tokenizer, "2+3?")
    assert tokenizer.decode(ids).endswith("<|im_start|>user\nSolve: 2+3?<|im_end|>\n<|im_start|>assistant\n")
    assert tokenizer.decode(chat.closing) == "\n\nThe final answer is $\\boxed{"
    assert chat.answer(tokenizer, tokenizer.encode("It is 5.") + [tokenizer.eos_token_id], stopped=True) == "It is 5."


def test_a_reasoning_model_thinks_inside_its_tags_and_is_graded_after_them(tokenizer, smollm2_path):
    tokenizer = tokenizer.__class__.from_pretrained(smollm2_path)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<think>", "</think>"]},
                                 replace_extra_special_tokens=False)
    chat = ChatFormat.of(text_model(smollm2_path, reasoning=True), tokenizer, "long")
    open_id, close_id = (tokenizer.convert_tokens_to_ids(t) for t in ("<think>", "</think>"))
    prompt = chat.prompt(tokenizer, "2+3?")
    assert prompt[-1] == open_id and prompt.count(open_id) == 1
    assert chat.closing[:2] == tokenizer.encode("\n", add_special_tokens=False) + [close_id]
    thought = tokenizer.encode("Two and three make five.", add_special_tokens=False)
    answer = tokenizer.encode(" The answer is \\boxed{5}.", add_special_tokens=False)
    assert chat.answer(tokenizer, thought + [close_id] + answer, stopped=False) == "The answer is \\boxed{5}."
    assert chat.answer(tokenizer, thought, stopped=False) is None, "no end of thinking, no answer"
    # a template that opens the thinking itself (as R1-Distill's does, "<think>\n") gets no second tag
    tokenizer.chat_template = tokenizer.chat_template.replace("'<|im_start|>assistant\n'",
                                                              "'<|im_start|>assistant\n<think>\n'")
    r1 = ChatFormat.of(text_model(smollm2_path, reasoning=True), tokenizer, "long")
    assert r1.prompt(tokenizer, "2+3?").count(open_id) == 1 and r1.ask(tokenizer, "Hi").count(open_id) == 1


def test_formats_a_tokenizer_cannot_serve_are_clear_errors(tokenizer, smollm2_path):
    model = text_model(smollm2_path)
    with pytest.raises(FormatError, match=r"long \(.*\) speaks the protocol"):
        ChatFormat.of(ModelConfig(path=smollm2_path), tokenizer, "long")
    with pytest.raises(FormatError, match="needs <think> and </think> as single tokens"):
        ChatFormat.of(text_model(smollm2_path, reasoning=True), tokenizer, "long")
    bare = tokenizer.__class__.from_pretrained(smollm2_path)
    bare.chat_template = None
    with pytest.raises(FormatError, match="format: text needs a chat template, and its tokenizer has none"):
        ChatFormat.of(model, bare, "short")
    bare.chat_template = "{% for m in messages %}{{ m['content'] }}\n{% endfor %}"
    with pytest.raises(FormatError, match="adds no generation prompt"):
        ChatFormat.of(model, bare, "short")


@pytest.fixture(scope="module")
def hosted(smollm2_path):
    from longshort.config import Config
    from longshort.runner import start

    model = text_model(smollm2_path)
    config = Config(long=model, short=model, scoring=ScoringConfig(rollouts=4, answer_tokens=8))
    return config, start(config, use_ray=False)


def test_text_rollouts_copy_an_answer_the_thinking_states_and_grade_it_from_text(hosted):
    from longshort.chunking import chunk_text
    from longshort.importance import chunk_turn, make_rollouts
    from longshort.transcript import Transcript

    config, hosted = hosted
    rollouts = make_rollouts(config, hosted)
    assert rollouts.chat is not None and "text format (an instruct model" in rollouts.chat.describe()
    tok = hosted.tokenizer
    problem = Problem("p", "Tom has 17 apples and buys 25 more. How many apples does he have?", "42", "t", "math")
    thinking = ("Tom starts with 17 apples.\n\nHe buys 25 more, so I add them.\n\n"
                "17 + 25 = 42, so Tom has 42 apples.")
    chunks = chunk_text(thinking, tok, config.chunking.model_copy(update={"min_tokens": 2}))
    assert len(chunks) == 3
    ids = tok(thinking, add_special_tokens=False)["input_ids"]
    prompt = rollouts.chat.prompt(tok, problem.question)
    states = [Transcript(problem, list(prompt), turns=[chunk_turn(c, tok, hosted.protocol, "long", ids)
                                                       for c in chunks[:depth]]) for depth in (0, 3)]
    assert all(t.forced_ids == [] for t in states[1].turns), "no protocol tag on the text path"
    assert rollouts.context(states[1]) == prompt + ids + rollouts.chat.closing
    assert set(hosted.protocol.ids.values()).isdisjoint(rollouts.context(states[1]))
    before, after = rollouts.estimate(states, k=8)
    assert after.accuracy >= 0.5 and after.accuracy - before.accuracy >= 0.375, (before, after)
    assert rollouts.stats["naive_prefill_tokens"] > rollouts.stats["prefill_tokens"], "K rollouts share a prefill"


def test_score_prints_its_path_and_scores_a_real_trace_in_text_mode(hosted, tmp_path, capsys):
    from longshort.importance import read_scoring_inputs, score_file

    config, hosted = hosted
    row = {"id": "r1", "problem": "What is 6 times 7?", "answer": "42",
           "thinking": "<think>\nI need 6 times 7.\n\nSix sevens are 42. So the answer is 42.\n\n"
                       "**Final Answer**\n\\boxed{42}\n</think>\n\nSo $\\boxed{42}$."}
    (tmp_path / "t.jsonl").write_text(json.dumps(row) + "\n")
    inputs = read_scoring_inputs(tmp_path / "t.jsonl")
    config = config.model_copy(update={"chunking": config.chunking.model_copy(update={"min_tokens": 2})})
    score_file(config, hosted, inputs, tmp_path / "scored.jsonl")
    err = capsys.readouterr().err
    assert "scoring with long" in err and "in text format (an instruct model" in err
    (record,) = [json.loads(line) for line in open(tmp_path / "scored.jsonl")]
    assert record["format"] == "text" and inputs[0].prediction == "42"
    assert record["chunks"][-1]["acc"] >= 0.5 and record["chunks"][-1]["acc"] - record["acc0"] >= 0.375, record


def test_a_raw_trace_whose_thinking_never_ends_is_named(tmp_path):
    from longshort.importance import read_scoring_inputs
    from longshort.jsonl import InputError

    (tmp_path / "t.jsonl").write_text(json.dumps({"id": "cut", "problem": "p", "answer": "1",
                                                  "thinking": "<think>\nStill going"}) + "\n")
    with pytest.raises(InputError, match=r"line 1: trace cut: <think> is never closed by </think>"):
        read_scoring_inputs(tmp_path / "t.jsonl")


def test_score_rolls_out_from_the_blocks_a_model_groups_thoughts_into(hosted, shared_file, tmp_path):
    """`chunking.group_by` reaches the scorer (and so cold-start): its prefixes end at the grouped blocks."""
    from longshort.chunking import thoughts
    from longshort.importance import read_scoring_inputs, score_file

    config, hosted = hosted
    row = json.loads(shared_file("traces/limo_r1_distill_qwen32b.jsonl").read_text().splitlines()[0])
    row["thinking"] = row["thinking"][:1500]
    (tmp_path / "t.jsonl").write_text(json.dumps(row) + "\n")
    inputs = read_scoring_inputs(tmp_path / "t.jsonl")
    chunking = config.chunking.model_copy(update={"group_by": "long", "group_window": 8})
    config = config.model_copy(update={"chunking": chunking, "scoring": config.scoring.model_copy(
        update={"rollouts": 1, "answer_tokens": 2})})
    plain = thoughts([inputs[0].thinking], hosted.tokenizer, chunking)[0]
    grouped = thoughts([inputs[0].thinking], hosted.tokenizer, chunking, hosted.agents["long"])[0]
    assert len(grouped) < len(plain), "SmolLM2 merges some of these thoughts"
    score_file(config, hosted, inputs, tmp_path / "scored.jsonl")
    (record,) = [json.loads(line) for line in open(tmp_path / "scored.jsonl")]
    assert [(c["start"], c["end"]) for c in record["chunks"]] == [(b.start, b.end) for b in grouped]


def test_agents_whose_tokenizers_differ_are_refused(smollm2_path, tiny_config):
    from longshort.config import Config
    from longshort.runner import load_shared_tokenizer

    config = Config(long=text_model(smollm2_path), short=ModelConfig(path=tiny_config.short.path), source="c.yaml")
    with pytest.raises(ValueError, match="c.yaml: the long and short models must share one tokenizer"):
        load_shared_tokenizer(config)
