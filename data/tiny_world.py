"""The embedded tiny world: a tokenizer and two small Qwen2 checkpoints trained from scratch on CPU.

`make tiny` (``longshort tiny``) generates the synthetic task, trains a byte-level BPE tokenizer that carries the
protocol tags as special tokens, pretrains a long-style and a short-style model, and saves each as an ordinary
Hugging Face folder (model + tokenizer) that ``from_pretrained`` loads. Everything is derived from a seed; a build
is skipped when ``stamp.json`` records the same config.
"""
from __future__ import annotations

import functools
import hashlib
import json
import random
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import NamedTuple

from longshort.config import Config, ProtocolConfig, TinyModelConfig, TinyWorldConfig
from longshort.data.synthetic import (
    Paragraph,
    SyntheticProblem,
    long_trace,
    mixed_trace,
    op_label,
    plain_text,
    random_problem,
    short_trace,
    summary_text,
)
from longshort.problem import Problem
from longshort.protocol import Protocol, prompt_ids
from longshort.rl.samples import Sample, sft_samples
from longshort.rl.sft import train_sft
from longshort.transcript import Transcript, Turn

FORMAT_VERSION = 4  # bump when the generator or the encoding changes, so old builds are rebuilt
BASE_SPECIAL = ["<|pad|>", "<|endoftext|>", "<|system|>", "<|user|>", "<|assistant|>"]
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)
MAX_POSITIONS = 1024


def stamp_of(tiny: TinyWorldConfig, protocol: ProtocolConfig) -> dict:
    spec = {"format": FORMAT_VERSION, "tiny": tiny.model_dump(exclude={"out_dir"}), "protocol": protocol.model_dump()}
    return {"hash": hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:16], "spec": spec}


def build_environment() -> dict[str, str]:
    """What a build's models depend on besides the config, recorded in its stamp: library versions (constraints.txt
    pins the measured ones) and the CPU kernels torch dispatches to; the same seed elsewhere may train other models."""
    from importlib.metadata import version

    import torch

    return {**{name: version(name) for name in ("torch", "transformers", "tokenizers", "numpy")},
            "cpu_capability": torch.backends.cpu.get_cpu_capability()}


def seed_world(config: Config, seed: int) -> Config:
    """``config`` on the world of another seed: the world and the cold-start and RL run folders move to siblings
    named ``-seedN`` (``artifacts/tiny-seed1``, ``runs/coldstart-seed1``), and every path of the config inside them
    moves along, so each seed's runs start from its own models. The configured seed keeps the configured folders."""
    from longshort.config import PATH_KEYS, override

    if config.tiny is None:
        raise ValueError(f"{config.source}: no 'tiny' section, so there is no tiny world to build")
    if seed == config.tiny.seed:
        return config
    folders = [Path(config.tiny.out_dir), Path(config.coldstart.out_dir), Path(config.rl.out_dir)]
    changes: dict[str, object] = {"tiny.seed --seeds": seed}
    for *sections, key in PATH_KEYS:
        if "*" in sections:  # the free-form baselines: models of their own, never a world's or a run's
            continue
        part = config
        for section in sections:
            part = getattr(part, section)
        if getattr(part, key) is None:
            continue
        path = Path(getattr(part, key))
        for folder in folders:
            if path == folder or folder in path.parents:
                changes[".".join([*sections, key])] = str(folder.with_name(f"{folder.name}-seed{seed}")
                                                          / path.relative_to(folder))
                break
    return override(config, changes)


def is_built(tiny: TinyWorldConfig, protocol: ProtocolConfig) -> bool:
    stamp = Path(tiny.out_dir) / "stamp.json"
    return stamp.exists() and json.loads(stamp.read_text())["hash"] == stamp_of(tiny, protocol)["hash"]


class Problems(NamedTuple):
    train: list[SyntheticProblem]
    heldout: list[SyntheticProblem]


def problems(tiny: TinyWorldConfig) -> Problems:
    """Training and held-out problems; no held-out question appears in training."""
    rng = random.Random(tiny.seed)
    heldout: dict[str, SyntheticProblem] = {}
    while len(heldout) < tiny.heldout_problems:
        p = random_problem(rng, tiny.min_ops, tiny.max_ops, tiny.modulus, tiny.variables)
        heldout.setdefault(p.question, p)
    train_set = []
    while len(train_set) < tiny.train_problems:
        p = random_problem(rng, tiny.min_ops, tiny.max_ops, tiny.modulus, tiny.variables)
        if p.question not in heldout:
            train_set.append(p)
    return Problems(train_set, list(heldout.values()))


def heldout_traces(tiny: TinyWorldConfig, heldout: list[SyntheticProblem]) -> list[list[Paragraph]]:
    """The labelled long-style trace of each held-out problem (``heldout_traces.jsonl``), as the build writes them."""
    rng = random.Random(tiny.seed + 2)
    return [long_trace(p, rng, tiny.long_style) for p in heldout]


def as_problem(p: SyntheticProblem, index: int) -> Problem:
    return Problem(
        id=f"synthetic-{index:05d}",
        question=p.question,
        answer=p.answer,
        source="synthetic",
        kind="synthetic",
        meta={"start": p.start, "ops": [list(op) for op in p.ops], "modulus": p.modulus}
        | ({} if p.y_start is None else {"y_start": p.y_start}),
    )


def from_meta(meta: dict) -> SyntheticProblem:
    """The synthetic problem behind a tiny-world problem's ``meta`` (``as_problem``)."""
    return SyntheticProblem(meta["start"], tuple(tuple(op) for op in meta["ops"]), meta["modulus"], meta.get("y_start"))


def build_tokenizer(texts: list[str], vocab_size: int, protocol: ProtocolConfig, max_ops: int):
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = BASE_SPECIAL + protocol.tags()
    core = Tokenizer(models.BPE())
    # digits split one by one, so a number's digits are the same tokens wherever it is written
    core.pre_tokenizer = pre_tokenizers.Sequence(
        [pre_tokenizers.Digits(individual_digits=True), pre_tokenizers.ByteLevel(add_prefix_space=False)]
    )
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=special,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    # each operation's label is one token, so a step finds its line of the question with a one-token match
    core.add_tokens([AddedToken(op_label(k), normalized=False) for k in range(1, max_ops + 1)])
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|endoftext|>",
        pad_token="<|pad|>",
        extra_special_tokens=BASE_SPECIAL[2:] + protocol.tags(),
        chat_template=CHAT_TEMPLATE,
        model_max_length=MAX_POSITIONS,
    )


def chunk_transcript(problem: Problem, synthetic: SyntheticProblem, chunks: list[Paragraph], tokenizer,
                     protocol: Protocol, fold_rng: random.Random | None = None, lossy: float = 0.0) -> Transcript:
    """A finished Transcript in which each chunk is one turn of the agent whose style wrote it.

    A short chunk followed by a long one ends with the hand-back tag. The last chunk carries the answer block.
    With ``fold_rng``, a summary turn (by either agent) closes a segment every 2 to 4 chunks; a share ``lossy`` of
    the summaries keeps only x.
    """
    encode = functools.lru_cache(maxsize=None)(lambda text: tuple(tokenizer.encode(text, add_special_tokens=False)))
    turns, segment, in_segment = [], 0, 0
    fold_after = fold_rng.randint(2, 4) if fold_rng else None
    for k, chunk in enumerate(chunks):
        body = list(encode(chunk.text))
        if k == len(chunks) - 1:
            kind = "answer"
            body += protocol.answer_block(encode(problem.answer))
        else:
            kind = "think"
            body.append(protocol.think_end_id(chunk.agent, chunks[k + 1].agent))
        turns.append(Turn(chunk.agent, kind, [protocol.open_id(chunk.agent)], body, None, "stop", chunk.text, segment))
        in_segment += 1
        if fold_rng and kind == "think" and in_segment >= fold_after:
            text = summary_text(synthetic, chunk.done, lossy=bool(lossy) and fold_rng.random() < lossy)
            turns.append(Turn(fold_rng.choice(["long", "short"]), "summary", [protocol.ids["summary_open"]],
                              [*encode(text), protocol.ids["summary_close"]], None, "stop", text, segment))
            segment, in_segment, fold_after = segment + 1, 0, fold_rng.randint(2, 4)
    return Transcript(problem, prompt_ids(tokenizer, problem.question), turns=turns, answer=problem.answer,
                      stop_reason="answered")


def training_samples(transcripts: list[tuple[Transcript, Transcript, Transcript]], agent: str,
                     rng: random.Random) -> list[Sample]:
    """Per problem: the agent's own-style trace, and either the mixed one or one folded under a random policy.

    Own-style traces are half the data: solving alone is the skill that takes longest to learn.
    """
    samples = []
    for own, mixed, folded in transcripts:
        samples += sft_samples(own, agent)
        if rng.random() < 0.5:
            samples += sft_samples(mixed, agent)
        else:
            samples += sft_samples(replace(folded, memory=rng.choice(["fold-restart", "fold-append"])), agent)
    return samples


def build_model(tokenizer, shape: TinyModelConfig, seed: int):
    import torch
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(seed)
    config = Qwen2Config(
        vocab_size=len(tokenizer),
        hidden_size=shape.hidden_size,
        intermediate_size=shape.mlp_ratio * shape.hidden_size,
        num_hidden_layers=shape.num_hidden_layers,
        num_attention_heads=shape.num_attention_heads,
        num_key_value_heads=shape.num_attention_heads,
        max_position_embeddings=MAX_POSITIONS,
        tie_word_embeddings=True,
        bos_token_id=None,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    return Qwen2ForCausalLM(config)


def build(config: Config, force: bool = False, log=print, probe=None) -> Path:
    """Build the tiny world into ``config.tiny.out_dir`` unless an identical build is already there.

    ``probe(model, step, loss)``, if given, is called after each training step of the long model, with the held-out
    files already written: ``eval/step_roles.py --every`` draws the long model's learning curve with it."""
    tiny, out = config.tiny, Path(config.tiny.out_dir)
    if tiny is None:
        raise ValueError(f"{config.source}: no 'tiny' section, so there is no tiny world to build")
    if not force and is_built(tiny, config.protocol):
        log(f"tiny world up to date in {out}")
        return out
    start = time.perf_counter()
    out.mkdir(parents=True, exist_ok=True)
    (out / "stamp.json").unlink(missing_ok=True)
    train_set, heldout = problems(tiny)
    rng = random.Random(tiny.seed + 1)
    style = tiny.long_style
    traces = [(p, long_trace(p, rng, style), short_trace(p), mixed_trace(p, rng, style)) for p in train_set]

    corpus = [p.question for p in train_set[:2000]] + [plain_text(t) for _, *styles in traces[:2000] for t in styles]
    corpus += [summary_text(p, k) for p in train_set[:200] for k in range(len(p.ops) + 1)]
    tokenizer = build_tokenizer(corpus, tiny.vocab_size, config.protocol, tiny.max_ops)
    protocol = Protocol.from_tokenizer(config.protocol, tokenizer, "the tiny tokenizer")
    for agent in ("long", "short"):
        tokenizer.save_pretrained(out / agent)
    with open(out / "heldout.jsonl", "w") as f:
        for i, p in enumerate(heldout):
            f.write(json.dumps(as_problem(p, i).to_dict()) + "\n")
    with open(out / "heldout_traces.jsonl", "w") as f:
        for i, (p, chunks) in enumerate(zip(heldout, heldout_traces(tiny, heldout))):
            f.write(json.dumps({"id": f"synthetic-{i:05d}", "problem": p.question, "thinking": plain_text(chunks),
                                "answer": p.answer, "chunks": [asdict(c) for c in chunks]}) + "\n")

    for agent, shape in (("long", tiny.long_model), ("short", tiny.short_model)):
        transcripts = []
        for i, (p, long_chunks, short_chunks, mixed_chunks) in enumerate(traces):
            own = long_chunks if agent == "long" else short_chunks
            problem = as_problem(p, i)
            transcripts.append((
                chunk_transcript(problem, p, own, tokenizer, protocol),
                chunk_transcript(problem, p, mixed_chunks, tokenizer, protocol),
                chunk_transcript(problem, p, rng.choice([own, mixed_chunks]), tokenizer, protocol, rng,
                                 tiny.lossy_summaries),
            ))
        samples = training_samples(transcripts, agent, rng)
        model = build_model(tokenizer, shape, tiny.seed)
        params = sum(t.numel() for t in model.parameters())
        log(f"{agent} model: {params / 1e6:.2f}M parameters, {len(samples)} samples, {shape.steps} steps")
        on_step = functools.partial(probe, model) if probe and agent == "long" else None
        losses = train_sft(model, samples, steps=shape.steps, batch_size=tiny.batch_size,
                           learning_rate=tiny.learning_rate, decay_share=tiny.lr_decay_share,
                           pad_id=tokenizer.pad_token_id, seed=tiny.seed, desc=agent, on_step=on_step)
        model.generation_config.eos_token_id = tokenizer.eos_token_id
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        model.save_pretrained(out / agent)
        log(f"{agent} model: final loss {sum(losses[-20:]) / 20:.3f}")

    stamp = stamp_of(tiny, config.protocol) | {"seconds": round(time.perf_counter() - start, 1),
                                               "environment": build_environment()}
    (out / "stamp.json").write_text(json.dumps(stamp, indent=2))
    log(f"tiny world built in {out} in {stamp['seconds']} s")
    return out
