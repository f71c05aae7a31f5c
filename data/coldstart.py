"""Cold-start data: long traces → thoughts → importance → a long/short split → collaborative and folded
Transcripts → per-agent SFT samples.

1. Each trace is chunked and scored (longshort/importance.py; ``scored.jsonl`` resumes).
2. A thought whose score exceeds ``coldstart.threshold`` is the long agent's, the rest the short agent's (kept
   verbatim, or rewritten concisely by the short model, which sees the question and the thoughts before; a
   rewrite cut by its cap, empty, no shorter than its source or dropping a number the next thought uses is
   rejected and counted; or, for the tiny world's own traces, each run as the plain steps it carries out). The
   first thought and any thought past the scoring model's context stay long.
3. The thoughts become one Transcript in the handoff protocol: the long agent writes its thought, the short agent
   carries on and ends its last thought before a long one with the hand-back tag (where two long thoughts follow
   each other, the short agent hands back at once); the last thought carries the gold answer in the answer tags.
4. A share of the traces is also written folded (InftyThink): a segment closes at the first thought that brings it
   to ``segment_tokens``; the summarizer model writes its summary from what it sees under the fold policy, as a
   protocol summary turn, or, in its own text format, answering ``summary_prompt`` in a new chat given the
   previous summary and the new segment (cumulative, as InftyThink's). The summary turn
   belongs to the agent that summarizes at inference (``solve.memory.summarizer``), which learns to write it.
5. Per agent: SFT samples (token ids + loss mask on that agent's own tokens) derived from the Transcripts.

A trace with a ``prediction`` (its own final answer) that does not grade as the gold answer is dropped unless
``keep_wrong``; a trace whose gold the grader cannot read is dropped by the scorer. Both are counted in the manifest.
"""
from __future__ import annotations

import json
import random
import re
from pathlib import Path

from longshort.agents.backend import GenerationRequest
from longshort.config import ColdstartConfig
from longshort.memory import render
from longshort.problem import Problem
from longshort.protocol import prompt_ids
from longshort.transcript import Transcript, Turn


def split(record: dict, threshold: float) -> list[tuple[str, str]]:
    """``(agent, text)`` per thought of a scored trace. The first thought is the long agent's whatever its score:
    in the handoff protocol the long agent opens."""
    pieces = [("long" if c.get("score") is None or c["score"] > threshold else "short", c["text"].strip())
              for c in record["chunks"] if c["text"].strip()]
    return [("long", pieces[0][1])] + pieces[1:] if pieces else []


def build_transcript(problem: Problem, pieces: list[tuple[str, list[int]]], tokenizer, protocol,
                     summaries: dict[int, Turn] | None = None, until: int | None = None,
                     memory: str = "unfold") -> Transcript:
    """A finished handoff Transcript of ``pieces`` (agent, token ids of its thought) under memory policy ``memory``;
    ``summaries[i]`` is a summary turn placed after piece ``i``, closing its segment. With ``until``, only the turns
    up to piece ``until``: the context a summarizer sees there.

    A summary its writer opened itself (no forced open tag: ``solve.memory.folds: self``) follows its step in place
    of the step's close tag, as the writer generates it at inference; after it the handoff router gives the pen to
    the short agent, which hands straight back when the next thought is the long agent's."""
    p, turns, segment = protocol, [], 0
    answer = tokenizer.encode(problem.answer, add_special_tokens=False)

    def add(agent: str, kind: str, body: list[int]) -> None:
        turns.append(Turn(agent, kind, [p.open_id(agent)], body, None, "stop", tokenizer.decode(body), segment))

    for i, (agent, ids) in enumerate(pieces):
        last = i == len(pieces) - 1
        following = None if last else pieces[i + 1][0]
        summary = summaries.get(i) if summaries and not last else None
        self_fold = summary is not None and not summary.forced_ids
        if last:
            add(agent, "answer", ids + p.answer_block(answer))
        else:
            add(agent, "think", ids if self_fold else ids + [p.think_end_id(agent, following)])
            if agent == following == "long" and i != until and not self_fold:
                add("short", "think", [p.think_end_id("short", "long")])  # the short agent hands straight back
        if i == until:
            return Transcript(problem, prompt_ids(tokenizer, problem.question), router="handoff", memory=memory,
                              turns=turns)
        if summary is not None:
            turns.append(summary)
            segment += 1
            if self_fold and following == "long":
                add("short", "think", [p.think_end_id("short", "long")])
    return Transcript(problem, prompt_ids(tokenizer, problem.question), router="handoff", memory=memory,
                      turns=turns, answer=problem.answer, stop_reason="answered")


NUMBER = re.compile(r"(?<![\d.])\d+(?:\.\d+)?")


def rewrite_verdict(source: str, completion, text: str, following: str | None, tokenizer) -> str:
    """``ok``, or why a rewrite of ``source`` is rejected: ``cut`` by its token cap, ``empty``, ``longer`` (no
    shorter than its source, in tokens), or ``numbers`` (it drops a number the next thought, ``following``, uses)."""
    if completion.stop_reason != "stop":
        return "cut"
    if not text:
        return "empty"
    if len(tokenizer.encode(text, add_special_tokens=False)) >= len(tokenizer.encode(source, add_special_tokens=False)):
        return "longer"
    used = set(NUMBER.findall(following or "")) & set(NUMBER.findall(source))
    return "numbers" if used - set(NUMBER.findall(text)) else "ok"


def rewrite_requests(problems: list[Problem], pieces: list[list[tuple[str, str]]], agent, tokenizer, chat,
                     config: ColdstartConfig) -> tuple[list[tuple[int, int]], list[GenerationRequest]]:
    """Where the short thoughts are and one request each: the rewriter sees the question, the thoughts before
    (the latest whose tokens fit ``rewrite_context`` and the model's context) and the thought."""
    from longshort.chat import ask

    room = agent.info()["max_context"] - config.rewrite_tokens
    where, requests = [], []
    for t, trace in enumerate(pieces):
        sizes = [len(tokenizer.encode(text, add_special_tokens=False)) for _, text in trace]
        for i, (owner, text) in enumerate(trace):
            if owner != "short":
                continue
            first, spent = i, 0
            while first > 0 and spent + sizes[first - 1] <= config.rewrite_context:
                first -= 1
                spent += sizes[first]
            while True:
                before = "\n\n".join(x for _, x in trace[first:i]) or "(nothing yet)"
                message = config.rewrite_prompt.format(question=problems[t].question, before=before, text=text)
                ids = ask(tokenizer, message, chat)
                if len(ids) <= room or first == i:
                    break
                first += 1  # drop the oldest thought shown until the request fits
            if len(ids) <= room:
                where.append((t, i))
                requests.append(GenerationRequest(ids, config.rewrite_tokens, temperature=0.0, logprobs=False))
    return where, requests


def rewrite(problems: list[Problem], pieces: list[list[tuple[str, str]]], agent, tokenizer, chat,
            config: ColdstartConfig) -> tuple[list[list[tuple[str, str]]], dict]:
    """The short thoughts of every trace rewritten by the short model, in one batched call (``chat``: its text
    format, None when it speaks the protocol); a rejected rewrite leaves the thought as it was. Returns the
    thoughts and the counts of rewrites kept and rejected, by reason."""
    where, requests = rewrite_requests(problems, pieces, agent, tokenizer, chat, config)
    counts = {"short_thoughts": sum(owner == "short" for trace in pieces for owner, _ in trace),
              "too_long_to_ask": 0, "ok": 0, "cut": 0, "empty": 0, "longer": 0, "numbers": 0}
    counts["too_long_to_ask"] = counts["short_thoughts"] - len(where)
    rewritten = [list(trace) for trace in pieces]
    for (t, i), result in zip(where, agent.generate(requests) if requests else []):
        completion = result.completions[0]
        ids = completion.token_ids[:-1] if completion.stop_reason == "stop" else completion.token_ids
        text = tokenizer.decode(ids, skip_special_tokens=True).strip()
        following = pieces[t][i + 1][1] if i + 1 < len(pieces[t]) else None
        verdict = rewrite_verdict(pieces[t][i][1], completion, text, following, tokenizer)
        counts[verdict] += 1
        if verdict == "ok":
            rewritten[t][i] = ("short", text)
    return rewritten, counts


def steps_only(generated: tuple, trace: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """A scored tiny-world trace (``split``'s thoughts) with each of the short agent's runs as its plain steps."""
    from longshort.data.synthetic import steps_only_rewrite

    synthetic, chunks = generated
    if [c.text for c in chunks] != [text for _, text in trace]:
        raise ValueError(f"a trace of {len(trace)} scored thoughts is not its {len(chunks)} generated paragraphs one "
                         "for one; the steps rewrite needs chunking that keeps one thought per paragraph")
    return steps_only_rewrite(synthetic, chunks, [agent for agent, _ in trace])


def fold_points(pieces: list[tuple[str, list[int]]], segment_tokens: int) -> list[int]:
    """Indexes of the thoughts that close a segment: the first to bring it to ``segment_tokens``."""
    points, spent = [], 0
    for i, (_, ids) in enumerate(pieces[:-1]):
        spent += len(ids)
        if spent >= segment_tokens:
            points.append(i)
            spent = 0
    return points


def fold(problems: list[Problem], pieces: list[list[tuple[str, list[int]]]], agents: dict, tokenizer, protocol,
         config: ColdstartConfig, owner: str, chat=None, self_folds: bool = False) -> list[Transcript]:
    """Folded transcripts: summaries written round by round (the k-th of every trace in one call). A summarizer
    that speaks the protocol (``chat`` None) writes a summary turn after what it sees under the fold policy; one in
    its own text format (``chat``) answers ``summary_prompt`` in a new chat, given the previous summary and the new
    segment, so each summary covers all the reasoning so far (InftyThink). A summary turn is ``owner``'s, the agent
    that summarizes at inference, so that agent learns to write it (as short thoughts are the short agent's whoever
    wrote their text); with ``self_folds`` it is the writer's of the step it closes, opened by that writer (so
    each agent learns to close its own steps with a summary, where the steps end)."""
    from longshort.chat import ask

    p, agent = protocol, config.summarizer
    points = [fold_points(trace, config.segment_tokens) for trace in pieces]
    summaries: list[dict[int, Turn]] = [{} for _ in pieces]
    for round_ in range(max((len(x) for x in points), default=0)):
        todo = [t for t in range(len(pieces)) if round_ < len(points[t])]
        requests = []
        for t in todo:
            at = points[t][round_]
            partial = build_transcript(problems[t], pieces[t], tokenizer, protocol, summaries[t], until=at,
                                       memory=config.fold_policy)
            if chat is None:
                context = render(partial) + [p.ids["summary_open"]]
                stops = (p.ids["summary_close"],)
            else:
                segment = [u for u in partial.turns if u.segment == partial.segment and u.kind == "think"]
                previous = [u for u in partial.turns if u.kind == "summary"][-1:]
                text = lambda turns: "\n\n".join(  # noqa: E731
                    tokenizer.decode(u.token_ids, skip_special_tokens=True).strip() for u in turns).strip()
                context = ask(tokenizer, config.summary_prompt.format(
                    question=problems[t].question, summary=text(previous) or "(none yet)", reasoning=text(segment)),
                    chat)
                stops = ()
            requests.append(GenerationRequest(context, config.summary_tokens, stops, logprobs=False,
                                              temperature=config.summary_temperature,
                                              seed=config.seed + 1000 * t + round_))
        for t, result in zip(todo, agents[agent].generate(requests)):
            ids = result.completions[0].token_ids
            if result.completions[0].stop_reason == "stop":
                ids = ids[:-1]
            body = [i for i in ids if i not in p.ids.values()] + [p.ids["summary_close"]]
            at, text, opener = points[t][round_], tokenizer.decode(body[:-1]), p.ids["summary_open"]
            if self_folds:  # the writer opens it: the open tag is one of its tokens
                summaries[t][at] = Turn(pieces[t][at][0], "summary", [], [opener] + body, None, "stop", text, round_)
            else:
                summaries[t][at] = Turn(owner, "summary", [opener], body, None, "stop", text, round_)
    return [build_transcript(problem, trace, tokenizer, protocol, s, memory=config.fold_policy)
            for problem, trace, s in zip(problems, pieces, summaries)]


def chat_of(config, agent: str, tokenizer):
    """The text format of ``agent``'s model (longshort/chat.py), or None when it speaks the protocol."""
    from longshort.chat import ChatFormat

    model = config.model(agent)
    return ChatFormat.of(model, tokenizer, agent) if model.format == "text" else None


def synthesize(config, hosted, inputs, out: Path, log=print, paragraphs: dict | None = None) -> dict:
    """Score, split, rewrite, fold; write transcripts, per-agent samples and a manifest into ``out``.

    ``paragraphs`` (problem id -> synthetic problem and its generated chunks) are what the ``steps`` rewrite
    of tiny-world traces reads."""
    from longshort.grader import grade
    from longshort.importance import score_file
    from longshort.rl.samples import sft_samples

    agents, tokenizer, protocol = hosted.agents, hosted.tokenizer, hosted.protocol
    cfg = config.coldstart
    stats = score_file(config, hosted, inputs, out / "scored.jsonl")
    by_id = {item.problem.id: item for item in inputs}
    records = [json.loads(line) for line in open(out / "scored.jsonl")]
    counts = {"traces": len(inputs), "unreadable_gold": 0, "wrong_answer": 0, "used": 0, "folded": 0}
    problems, texts = [], []
    for record in records:
        item = by_id.get(record["id"])
        if item is None:
            continue
        if "skipped" in record:
            counts["unreadable_gold"] += 1
            continue
        prediction = item.prediction
        if (prediction is not None and not cfg.keep_wrong
                and not grade(item.problem.kind, prediction, item.problem.answer, delimited=True)):
            counts["wrong_answer"] += 1
            continue
        problems.append(item.problem)
        texts.append(split(record, cfg.threshold))
    rewriter, summarizer = chat_of(config, "short", tokenizer), chat_of(config, cfg.summarizer, tokenizer)
    path = lambda chat: "protocol tags" if chat is None else chat.describe()  # noqa: E731
    by = {"short": f" (by short in {path(rewriter)})",
          "steps": " (the plain steps each run of short thoughts carries out)"}
    log(f"rewrite: {cfg.rewrite}{by.get(cfg.rewrite, '')}; summaries by {cfg.summarizer} in {path(summarizer)}")
    rewrites = {}
    if cfg.rewrite == "short":
        texts, rewrites = rewrite(problems, texts, agents["short"], tokenizer, rewriter, cfg)
    elif cfg.rewrite == "steps":
        texts = [steps_only(paragraphs[p.id], trace) for p, trace in zip(problems, texts)]
    pieces = [[(agent, tokenizer.encode(text, add_special_tokens=False)) for agent, text in trace] for trace in texts]
    transcripts = [build_transcript(p, trace, tokenizer, protocol) for p, trace in zip(problems, pieces)]
    rng = random.Random(cfg.seed)
    chosen = [i for i in range(len(problems)) if rng.random() < cfg.fold_share]
    folded = fold([problems[i] for i in chosen], [pieces[i] for i in chosen], agents, tokenizer, protocol, cfg,
                  config.solve.memory.summarizer, summarizer, self_folds=config.solve.memory.folds == "self")
    counts["used"], counts["folded"] = len(transcripts), sum(t.folds > 0 for t in folded)

    with open(out / "transcripts.jsonl", "w") as f:
        for t in transcripts + folded:
            f.write(json.dumps(t.to_dict()) + "\n")
    samples = {}
    for agent in ("long", "short"):
        samples[agent] = [s for t in transcripts for s in sft_samples(t, agent)]
        samples[agent] += [s for t in folded for s in sft_samples(t, agent)]
        write_samples(samples[agent], out / "samples" / agent)
    thoughts = [agent for trace in texts for agent, _ in trace]
    manifest = {
        "counts": counts,
        "thoughts": {"long": thoughts.count("long"), "short": thoughts.count("short")},
        "rewrites": rewrites,
        "tokens": {agent: sum(t.tokens(agent, "think") + t.tokens(agent, "answer") for t in transcripts)
                   for agent in ("long", "short")},
        "samples": {agent: {"count": len(s), "tokens": sum(len(x.input_ids) for x in s),
                            "trained_tokens": sum(sum(x.loss_mask) for x in s)} for agent, s in samples.items()},
        "scoring": {k: round(v, 2) for k, v in stats.items()},
        "config": {"coldstart": cfg.model_dump(), "scoring": config.scoring.model_dump()},
        "seed": cfg.seed,
    }
    (out / "manifest.json").write_text(json.dumps(manifest, indent=2))
    log(f"cold-start data in {out}: {counts['used']} transcripts ({counts['folded']} also folded), "
        f"{manifest['thoughts']['long']} long and {manifest['thoughts']['short']} short thoughts; "
        f"dropped {counts['wrong_answer']} wrong and {counts['unreadable_gold']} unreadable"
        + (f"; rewrites kept {rewrites['ok']} of {rewrites['short_thoughts']}" if rewrites else ""))
    return {"manifest": manifest, "samples": samples}


def write_samples(samples, folder: Path) -> None:
    """Samples as JSONL (``input_ids``, ``loss_mask``) and as a ``datasets`` dataset beside it."""
    from datasets import Dataset

    folder.mkdir(parents=True, exist_ok=True)
    rows = [{"input_ids": s.input_ids, "loss_mask": s.loss_mask} for s in samples]
    with open(folder / "samples.jsonl", "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    Dataset.from_list(rows).save_to_disk(str(folder / "dataset"))
