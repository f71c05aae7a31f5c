"""Monte Carlo chunk importance: how much a thought raises the chance of a correct answer, given where it falls.

A trace is cut into thoughts (longshort/chunking.py). Prefix ``i`` is the question plus the first ``i`` thoughts. From
every prefix, K rollouts of the scoring agent (``ScoringConfig``; longshort/rollouts.py), in the agent's format:

- ``protocol``: each thought is a closed think turn of the agent (the form cold-start SFT teaches); the ``answer``
  policy opens a new turn with ``answer_prompt`` and grades the text between the answer tags, the ``continue``
  policy lets the agent alone solve on through the orchestrator with up to ``continue_tokens`` new tokens.
- ``text`` (a pretrained model, before any SFT): the prefix is the model's chat prompt followed by the thinking
  text so far, exactly the ids of the trace's encoding (inside ``<think>`` for a reasoning model); the ``answer``
  policy closes it with the model's answer prompt, the ``continue`` policy writes on; either is graded from text.

``Acc_i`` is the share of correct rollouts from prefix ``i``; ``ΔAcc_i = Acc_i - Acc_{i-1}``; the decay
``δ_i = exp(-context_decay · c_i)`` in (0, 1] falls with the thought's context ``c_i``, the thinking tokens before
it (Long⊗Short: a gain made earlier, on a shorter context, is worth more); the score ``S_i = ΔAcc_i · δ_i`` lies in
[-1, 1]. Intervals are Hoeffding's at the configured confidence: ``Acc_i ± sqrt(ln(2/α) / 2K)`` and, as ``ΔAcc_i`` is
a difference of two independent means of K draws, ``ΔAcc_i ± sqrt(ln(2/α) / K)``. Cold-start gives the long agent
the thoughts whose ``S`` passes a positive threshold, so a late thought needs a larger gain (data/coldstart.py).

Prefixes are rolled out depth by depth across a batch of traces: one backend call for every trace's prefix 0,
then one for every prefix 1, and so on. Prefix ``i + 1`` extends prefix ``i``, so a backend with prefix reuse
(the HF prefix cache, vLLM's prefix caching) computes only the new thought; the K rollouts of a prefix share its
prefill. ``Rollouts`` counts the prompt tokens computed against a naive re-encoding of every rollout's prompt.
"""
from __future__ import annotations

import functools
import math
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from longshort.chunking import Chunk, thoughts
from longshort.config import Config, ScoringConfig
from longshort.jsonl import Appender, completed_keys, gold_text, read_rows, trace_id
from longshort.problem import Problem
from longshort.protocol import prompt_ids
from longshort.rollouts import ContinueRollouts, Estimate, Rollouts, hoeffding
from longshort.transcript import Transcript, Turn


def chunk_turn(chunk: Chunk, tokenizer, protocol, agent: str, thinking_ids: list[int] | None = None) -> Turn:
    """A thought as a turn of a prefix. On the protocol path it is a closed think turn of ``agent`` (its text without
    the breaks around it: the turn boundary stands for the paragraph break); on the text path (``thinking_ids``, the
    trace's encoding) it is its slice of that encoding, untagged, so the prefix is the thinking text itself."""
    if thinking_ids is not None:
        return Turn(agent, "think", [], thinking_ids[chunk.token_start:chunk.token_end], None, "stop", chunk.text)
    text = chunk.text.strip()
    ids = tokenizer.encode(text, add_special_tokens=False) + [protocol.close_id(agent)]
    return Turn(agent, "think", [protocol.open_id(agent)], ids, None, "stop", text)


def make_rollouts(config: Config, hosted) -> Rollouts:
    """The scorer's estimator for ``scoring.agent`` in that model's format."""
    from longshort.chat import ChatFormat

    scoring = config.scoring
    model = config.model(scoring.agent)
    if model.format == "text":
        chat = ChatFormat.of(model, hosted.tokenizer, scoring.agent)
        return Rollouts(hosted.agents, hosted.tokenizer, hosted.protocol, scoring, config.sampling.seed, chat=chat)
    if scoring.policy == "continue":
        from longshort.orchestrator import rollout_solver

        spawn = functools.partial(rollout_solver, hosted.agents, hosted.tokenizer, hosted.protocol)
        return ContinueRollouts(hosted.agents, hosted.tokenizer, hosted.protocol, scoring, seed=config.sampling.seed,
                                spawn=spawn)
    return Rollouts(hosted.agents, hosted.tokenizer, hosted.protocol, scoring, seed=config.sampling.seed)


def scoring_path(config: Config, rollouts: Rollouts) -> str:
    """One line naming the model that scores and the path it takes."""
    scoring = config.scoring
    model = config.model(scoring.agent)
    how = "protocol tags" if rollouts.chat is None else rollouts.chat.describe()
    return (f"scoring with {scoring.agent} ({model.path}) in {how}: {scoring.policy} policy, K = {scoring.rollouts}, "
            f"{rollouts.room()} new tokens per rollout")


def score_chunks(estimates: list[Estimate | None], chunks: list[Chunk], scoring: ScoringConfig) -> list[dict]:
    """Per chunk: its span, its context (thinking tokens before it), Acc after it, ΔAcc, δ, S and their intervals;
    ``estimates[i]`` is prefix i's (None when the prefix does not fit the model's context)."""
    half_acc = hoeffding(scoring.rollouts, scoring.confidence)
    half_delta = math.sqrt(2) * half_acc
    rows = []
    for i, chunk in enumerate(chunks, 1):
        row = asdict(chunk) | {"tokens": chunk.tokens, "context": chunk.token_start}
        before, after = estimates[i - 1], estimates[i]
        if before is None or after is None:
            rows.append(row | {"status": "past_context"})
            continue
        acc, delta = after.accuracy, after.accuracy - before.accuracy
        decay = math.exp(-scoring.context_decay * chunk.token_start)
        rows.append(row | {
            "status": "scored",
            "acc": acc,
            "acc_interval": [max(0.0, acc - half_acc), min(1.0, acc + half_acc)],
            "delta": delta,
            "delta_interval": [max(-1.0, delta - half_delta), min(1.0, delta + half_delta)],
            "decay": decay,
            "score": delta * decay,
            "score_interval": [max(-1.0, delta - half_delta) * decay, min(1.0, delta + half_delta) * decay],
        })
    return rows


@dataclass(frozen=True)
class ScoringInput:
    problem: Problem
    thinking: str
    prediction: str | None = None  # the trace's own final answer, when the row gives it


def read_scoring_inputs(path: str | Path, skip_bad: bool = False, default_kind: str = "math") -> list[ScoringInput]:
    """Traces with ``id``, ``problem`` (or ``question``), ``thinking`` and the gold ``answer``; optional ``kind``,
    and ``prediction``, the trace's own final answer. A raw R1-style ``thinking`` (``<think>...</think>`` then the
    final response) is cut at ``</think>``; the response's boxed answer becomes the prediction when none is given.
    A free-form transcript (``longshort solve --free NAME`` with a reasoning model) is read as such a raw text."""
    from longshort.grader import last_boxed

    seen: dict[str, int] = {}

    def parse(number: int, row: dict) -> ScoringInput:
        if isinstance(row.get("problem"), dict) and "turns" in row:
            row = from_transcript(row)
        thinking, question = row.get("thinking"), row.get("problem") or row.get("question")
        if isinstance(thinking, str) and "<think>" in thinking and "</think>" not in thinking:
            raise ValueError(f"trace {row.get('id', f'line-{number}')}: <think> is never closed by </think> "
                             "(a trace cut short?)")
        if isinstance(thinking, str) and "</think>" in thinking:
            thinking, response = thinking.split("</think>", 1)
            thinking = thinking.split("<think>", 1)[-1]
            boxed = last_boxed(response)
            row = {"prediction": boxed, **row} if boxed is not None else row
        found = trace_id(number, row, thinking, seen)
        if not isinstance(question, str) or not question.strip():
            raise ValueError(f"trace {found}: no problem text")
        gold = gold_text(row.get("answer"), f"trace {found}")
        if gold is None:
            raise ValueError(f"trace {found}: no gold answer")
        problem = Problem(found, question, gold, str(row.get("source", Path(path).stem)),
                          str(row.get("kind", default_kind)))
        prediction = row.get("prediction")
        return ScoringInput(problem, thinking, None if prediction is None else str(prediction))

    return read_rows(path, skip_bad, parse)


def from_transcript(row: dict) -> dict:
    """A trace row from a free-form transcript (``longshort solve --free NAME``): the reasoning model's text, cut
    at its end of thinking like a raw R1 text, the problem's gold answer."""
    problem = row["problem"]
    found = problem["id"] if not row.get("sample") else f"{problem['id']}-s{row['sample']}"
    if not str(row.get("router", "")).startswith("free:") or row.get("stop_reason") != "answered":
        raise ValueError(f"trace {found}: not a finished free-form transcript (router {row.get('router')!r}, stop "
                         f"{row.get('stop_reason')!r})")
    text = "".join(t["text"] for t in row["turns"])
    if "</think>" not in text:
        raise ValueError(f"trace {found}: the transcript's text has no </think> (traces come from a reasoning model)")
    return {"id": found, "problem": problem["question"], "answer": problem["answer"], "kind": problem["kind"],
            "source": problem["source"], "thinking": text}


def score_file(config: Config, hosted, inputs: list[ScoringInput], output: str | Path) -> dict:
    """Score every trace not yet in ``output``, appending one record per trace as its batch finishes."""
    from tqdm import tqdm

    from longshort.grader import check_gold

    tokenizer, protocol, scoring = hosted.tokenizer, hosted.protocol, config.scoring
    rollouts = make_rollouts(config, hosted)
    print(scoring_path(config, rollouts), file=sys.stderr)
    grouper = hosted.agents[config.chunking.group_by] if config.chunking.group_by else None
    done = completed_keys(output, lambda record: record["id"])
    todo = [item for item in inputs if item.problem.id not in done]
    writer = Appender(output)
    bar = tqdm(total=len(todo), desc=Path(output).stem, unit="trace", file=sys.stderr, mininterval=1.0)
    try:
        for lo in range(0, len(todo), scoring.traces_per_batch):
            batch = []
            for item in todo[lo : lo + scoring.traces_per_batch]:
                try:
                    check_gold(item.problem.kind, item.problem.answer)
                except ValueError as e:
                    writer.write({"id": item.problem.id, "skipped": str(e)})
                    bar.update()
                    continue
                batch.append(item)
            chunked = thoughts([item.thinking for item in batch], tokenizer, config.chunking, grouper)
            for record in _score_batch(batch, chunked, rollouts, tokenizer, protocol, scoring) if batch else []:
                writer.write(record)
                bar.update()
    finally:
        bar.close()
        writer.close()
    return rollouts.stats


def _score_batch(batch: list[ScoringInput], chunked: list[list[Chunk]], rollouts: Rollouts, tokenizer, protocol,
                 scoring: ScoringConfig) -> list[dict]:
    """Roll out every prefix of every trace in the batch, one depth per call, and score their chunks. Prefixes only
    grow, so once a trace's prefix passes the scoring model's context its later ones are not even built: the work
    per trace is bounded by what fits the context, however long the trace."""
    chat = rollouts.chat
    if chat is None:
        states = [Transcript(item.problem, prompt_ids(tokenizer, item.problem.question)) for item in batch]
        thinking: list[list[int] | None] = [None] * len(batch)
    else:
        states = [Transcript(item.problem, chat.prompt(tokenizer, item.problem.question)) for item in batch]
        thinking = [tokenizer(item.thinking, add_special_tokens=False)["input_ids"] for item in batch]
    fits = [True] * len(batch)
    estimates: list[list[Estimate | None]] = [[] for _ in batch]
    for depth in range(max(len(c) for c in chunked) + 1):
        live = [b for b, chunks in enumerate(chunked) if depth <= len(chunks) and fits[b]]
        if not live:
            break
        for b in live:
            if depth:
                states[b].turns.append(chunk_turn(chunked[b][depth - 1], tokenizer, protocol, scoring.agent,
                                                   thinking[b]))
            fits[b] = rollouts.fits(states[b])
        fitting = [b for b in live if fits[b]]
        for b, estimate in zip(fitting, rollouts.estimate([states[b] for b in fitting])):
            estimates[b].append(estimate)
    for b, chunks in enumerate(chunked):  # the prefixes past the context
        estimates[b] += [None] * (len(chunks) + 1 - len(estimates[b]))
    records = []
    for item, chunks, est in zip(batch, chunked, estimates):
        records.append({
            "id": item.problem.id,
            "answer": item.problem.answer,
            "rollouts": rollouts.scoring.rollouts,
            "policy": rollouts.scoring.policy,
            "format": "protocol" if rollouts.chat is None else "text",
            "acc0": est[0].accuracy if est[0] else None,
            "chunks": score_chunks(est, chunks, scoring),
        })
    return records
