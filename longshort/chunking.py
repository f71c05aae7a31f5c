"""Cut a long chain of thought into thoughts: the units that importance scoring rolls out from.

A thought starts at a paragraph break or at a discourse marker opening a sentence ("Wait", "Hmm", ...). A piece
under ``min_tokens`` joins the next one (the last joins the one before); a piece over ``max_tokens`` is cut at
sentence ends, or, when one sentence is longer than that, at a word boundary (between tokens only where no
whitespace falls within ``max_tokens``, as in a long formula). Every cut is a token boundary of one encoding of the
whole trace, so the token spans index that encoding and the chunk texts join back to the input; whatever the
tokenizer, a cut never falls inside a character, and inside a word only when the word itself is too long.
"""
from __future__ import annotations

import json
import re
import statistics
import sys
from bisect import bisect_right
from dataclasses import asdict, dataclass
from pathlib import Path

from longshort.config import ChunkingConfig
from longshort.jsonl import Appender, completed_keys

# Each matches a run of whitespace (two line breaks or more; after a sentence end, or one line break or more) up to
# the text that follows it. A match can start only at the run's first character, so the time is linear in the text
# even for a run of thousands of blank lines.
PARAGRAPH = re.compile(r"(?<!\s)[^\S\n]*\n[^\S\n]*\n\s*(?=\S)")
SENTENCE = re.compile(r"(?<=[.!?])\s+(?=\S)|(?<!\s)[^\S\n]*\n\s*(?=\S)")


@dataclass(frozen=True)
class Chunk:
    start: int  # characters of the trace text
    end: int
    token_start: int  # tokens of the whole trace's encoding
    token_end: int
    text: str

    @property
    def tokens(self) -> int:
        return self.token_end - self.token_start


def marker_pattern(markers: tuple[str, ...]) -> re.Pattern:
    """A marker as a whole word at the start of the text, of a line or of a sentence; group 1 is the marker.

    Only the first position of a run of whitespace can start a match (the text's start, a sentence end, or the run's
    first line break), so a long run of blank lines is scanned once, not once per line."""
    words = "|".join(re.escape(m) for m in sorted(markers, key=len, reverse=True))
    return re.compile(rf"(?:^|(?<=[.!?])|(?<!\s)[^\S\n]*\n)\s*({words})(?!\w)")


def chunk_text(text: str, tokenizer, config: ChunkingConfig) -> list[Chunk]:
    """The thoughts of ``text``, in order; one encoding of the whole text (a fast tokenizer's offsets) places them."""
    offsets = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)["offset_mapping"]
    n = len(offsets)
    ends = [end for _, end in offsets]

    def token_at(char: int) -> int:
        """The boundary before the token holding ``char`` (which may carry the space before it), never between the
        byte tokens of one character."""
        t = bisect_right(ends, char)
        while 0 < t < n and offsets[t][0] < offsets[t - 1][1]:
            t -= 1
        return t

    natural = {token_at(m.end()) for m in PARAGRAPH.finditer(text)}
    natural |= {token_at(m.start(1)) for m in marker_pattern(config.markers).finditer(text)}
    cuts = [0]
    for t in sorted(natural):
        if t - cuts[-1] >= config.min_tokens and t < n:
            cuts.append(t)
    if len(cuts) > 1 and n - cuts[-1] < config.min_tokens:
        cuts.pop()
    cuts.append(n)

    sentences = sorted({token_at(m.end()) for m in SENTENCE.finditer(text)})
    bounded = [0]
    for end in cuts[1:]:
        while end - bounded[-1] > config.max_tokens:
            bounded.append(_split_point(bounded[-1], end, sentences, offsets, text, config))
        bounded.append(end)

    chars = [0] + [offsets[t][0] for t in bounded[1:-1]] + [len(text)]
    return [Chunk(chars[i], chars[i + 1], bounded[i], bounded[i + 1], text[chars[i]:chars[i + 1]])
            for i in range(len(bounded) - 1)]


def _split_point(start: int, end: int, sentences: list[int], offsets, text: str, config: ChunkingConfig) -> int:
    """The latest cut that leaves a first piece of at most max_tokens and a rest of at least min_tokens: at a
    sentence end if there is one, else between words, else between characters."""
    lo, hi = start + config.min_tokens, min(start + config.max_tokens, end - config.min_tokens)
    i = bisect_right(sentences, hi) - 1
    if i >= 0 and sentences[i] >= lo:
        return sentences[i]
    whole = [t for t in range(hi, lo - 1, -1) if offsets[t][0] >= offsets[t - 1][1]]  # not inside a character
    spaced = (t for t in whole if text[offsets[t][0] - 1].isspace() or text[offsets[t][0]].isspace())
    return next(spaced, whole[0] if whole else hi)


GROUP_INSTRUCTION = (
    "Below are the numbered steps of a reasoning trace. Group consecutive steps that belong to one thought. "
    "Reply with only the numbers of the steps that start a new thought, separated by commas."
)


def block_starts(reply: str, steps: int) -> list[int]:
    """The 0-based first step of each block from a model's reply ("1, 4, 9"): numbers outside 1..steps are ignored,
    and step 1 always starts a block, so any reply (even an empty one) gives a partition."""
    numbers = {int(n) for n in re.findall(r"\d+", reply)}
    return sorted({0} | {n - 1 for n in numbers if 1 <= n <= steps})


def merge(chunks: list[Chunk], starts: list[int], text: str, max_tokens: int) -> list[Chunk]:
    """Chunks joined into blocks beginning at ``starts``; a block that would pass ``max_tokens`` is closed early."""
    blocks: list[list[Chunk]] = []
    for i, chunk in enumerate(chunks):
        if i in starts or not blocks or sum(c.tokens for c in blocks[-1]) + chunk.tokens > max_tokens:
            blocks.append([])
        blocks[-1].append(chunk)
    return [Chunk(b[0].start, b[-1].end, b[0].token_start, b[-1].token_end, text[b[0].start:b[-1].end])
            for b in blocks]


def group_requests(chunks: list[Chunk], tokenizer, window: int, max_context: int):
    """One greedy request per window of ``window`` thoughts, asking which of them start a new thought."""
    from longshort.agents.backend import GenerationRequest
    from longshort.protocol import prompt_ids

    requests = []
    for lo in range(0, len(chunks), window):
        part = chunks[lo:lo + window]
        steps = "\n".join(f"[{k}] {c.text.strip()}" for k, c in enumerate(part, 1))
        ids = prompt_ids(tokenizer, f"{GROUP_INSTRUCTION}\n\n{steps}")
        budget = 4 * len(part) + 8  # "12, " is at most four tokens
        if len(ids) + budget > max_context:
            requests.append(None)  # too long to ask about: these thoughts stay as they are
        else:
            requests.append(GenerationRequest(ids, budget, temperature=0.0, logprobs=False))
    return requests


def group_thoughts(traces: list[tuple[str, list[Chunk]]], agent, tokenizer, config: ChunkingConfig) -> list[list[Chunk]]:
    """Each trace's thoughts merged into blocks by ``agent``'s model, all windows of all traces in one call."""
    max_context = agent.info()["max_context"]
    asks = [group_requests(chunks, tokenizer, config.group_window, max_context) for _, chunks in traces]
    flat = [r for requests in asks for r in requests if r is not None]
    replies = iter(agent.generate(flat)) if flat else iter(())
    grouped = []
    for (text, chunks), requests in zip(traces, asks):
        starts = []
        for w, request in enumerate(requests):
            lo = w * config.group_window
            size = len(chunks[lo:lo + config.group_window])
            if request is None:
                starts += range(lo, lo + size)
            else:
                reply = tokenizer.decode(next(replies).completions[0].token_ids, skip_special_tokens=True)
                starts += [lo + s for s in block_starts(reply, size)]
        grouped.append(merge(chunks, starts, text, config.max_tokens))
    return grouped


def thoughts(texts: list[str], tokenizer, config: ChunkingConfig, grouper=None) -> list[list[Chunk]]:
    """The thoughts of each text: cut by ``chunk_text``, then merged into blocks by ``grouper`` (an agent hosting
    ``config.group_by``'s model) when given. ``longshort chunk``, ``score`` and ``coldstart`` all cut this way."""
    chunked = [chunk_text(text, tokenizer, config) for text in texts]
    if grouper is None:
        return chunked
    return group_thoughts(list(zip(texts, chunked)), grouper, tokenizer, config)


def chunk_file(traces: list[tuple[str, str]], output: str | Path, tokenizer, config: ChunkingConfig,
               grouper=None, batch: int = 8) -> int:
    """Chunk ``(id, thinking)`` traces into ``output``, one record per trace, skipping ids it already holds.

    With ``grouper`` (an agent hosting ``config.group_by``'s model), thoughts are merged into blocks by it.
    """
    from tqdm import tqdm

    done = completed_keys(output, lambda record: record["id"])
    todo = [(trace_id, text) for trace_id, text in traces if trace_id not in done]
    writer = Appender(output)
    bar = tqdm(total=len(todo), desc=Path(output).stem, unit="trace", file=sys.stderr, mininterval=1.0)
    try:
        for lo in range(0, len(todo), batch):
            part = todo[lo:lo + batch]
            for (trace_id, _), chunks in zip(part, thoughts([text for _, text in part], tokenizer, config, grouper)):
                writer.write({"id": trace_id, "chunks": [asdict(c) for c in chunks]})
                bar.update()
    finally:
        bar.close()
        writer.close()
    return len(todo)


def chunk_stats(output: str | Path) -> str:
    """The traces and chunks in ``output`` and the spread of chunk lengths."""
    with open(output, encoding="utf-8") as f:
        records = [json.loads(line) for line in f]
    ranked = sorted(c["token_end"] - c["token_start"] for r in records for c in r["chunks"])
    if not ranked:
        return f"{len(records)} traces, 0 chunks"
    p90 = ranked[-(-9 * len(ranked) // 10) - 1]  # nearest rank
    return (f"{len(records)} traces, {len(ranked)} chunks, tokens per chunk: min {ranked[0]}, "
            f"median {statistics.median(ranked):g}, p90 {p90}, max {ranked[-1]}")
