"""Figures of the real-model path on real traces: where the chunker cuts, and whether importance is degenerate.

    python eval/check_real.py chunks --traces T.jsonl --chunks C.jsonl        (C from `longshort chunk`)
    python eval/check_real.py select --traces T.jsonl --tokenizer M --max-tokens 4500 --limit 40 --output S.jsonl
    python eval/check_real.py importance --traces T.jsonl --scored S.jsonl    (S from `longshort score`)

``select``: the first ``--limit`` traces of the file whose thinking fits ``--max-tokens`` of the tokenizer (for a
model with a short context, as SmolLM2's 8K), written as they are.

``chunks``: the share of boundaries at a sentence or paragraph end (the text before the cut ends with ``.``, ``!`` or
``?``, closing quotes, brackets, ``$`` or ``*`` allowed after it, or a blank line lies at the cut), the share of
boundaries inside a word (a letter or digit on both sides), whether every trace is rebuilt exactly from its chunks'
spans, and thoughts per trace.

``importance``: over the traces whose thinking states the gold answer (the number standing alone, or the answer's
text), the mean accuracy after the whole thinking, the share whose largest ΔAcc falls at a thought that states the
answer, and the share of scored thoughts with a non-zero score.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys

SENTENCE_END = re.compile(r"""[.!?][)"'*$\]]*$""")


def at_sentence_end(text: str, cut: int) -> bool:
    """Whether a cut at character ``cut`` of ``text`` falls at a sentence or paragraph end."""
    before, after = text[:cut], text[cut:]
    gap = before[len(before.rstrip()):] + after[:len(after) - len(after.lstrip())]
    if gap.count("\n") >= 2 or not before.strip():
        return True
    return bool(SENTENCE_END.search(before.rstrip()))


def inside_word(text: str, cut: int) -> bool:
    return 0 < cut < len(text) and text[cut - 1].isalnum() and text[cut].isalnum()


def chunk_figures(thinking: dict[str, str], records: list[dict]) -> dict:
    """Boundary and granularity figures of ``longshort chunk`` records over the traces ``thinking`` (id -> text)."""
    cuts = ends = words = exact = 0
    counts = []
    for record in records:
        text, chunks = thinking[record["id"]], record["chunks"]
        spans = [(c["start"], c["end"]) for c in chunks]
        exact += ("".join(c["text"] for c in chunks) == text and spans[0][0] == 0 and spans[-1][1] == len(text)
                  and all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
                  and all(text[c["start"]:c["end"]] == c["text"] for c in chunks))
        counts.append(len(chunks))
        for c in chunks[1:]:
            cuts += 1
            ends += at_sentence_end(text, c["start"])
            words += inside_word(text, c["start"])
    return {"traces": len(records), "boundaries": cuts, "at_sentence_or_paragraph_end": ends / max(cuts, 1),
            "inside_a_word": words / max(cuts, 1), "exact_spans": exact / max(len(records), 1),
            "thoughts_per_trace": {"min": min(counts), "median": statistics.median(counts), "max": max(counts)}}


def states_answer(text: str, answer: str) -> bool:
    """Whether ``text`` states ``answer``: a number standing alone (not part of a longer one), else the text."""
    answer = answer.strip()
    if re.fullmatch(r"-?\d+(\.\d+)?", answer):
        return re.search(rf"(?<![\d.]){re.escape(answer)}(?![\d])", text) is not None
    return answer in text


def importance_figures(records: list[dict]) -> dict:
    """Non-degeneracy of importance on the traces whose thinking states the answer (scored records)."""
    stating, final, hits, scores = 0, [], 0, []
    for record in records:
        chunks = [c for c in record.get("chunks", []) if c.get("status") == "scored"]
        if not chunks or len(chunks) != len(record["chunks"]):
            continue  # skipped, or partly past the model's context
        scores += [c["score"] for c in chunks]
        states = [states_answer(c["text"], record["answer"]) for c in chunks]
        if not any(states):
            continue
        stating += 1
        final.append(chunks[-1]["acc"])
        best = max(range(len(chunks)), key=lambda i: chunks[i]["delta"])  # the first of equal gains
        hits += states[best]
    return {"traces": len(records), "stating_answer": stating,
            "accuracy_after_thinking": statistics.fmean(final) if final else 0.0,
            "largest_gain_at_a_statement": hits / max(stating, 1),
            "nonzero_scores": sum(s != 0 for s in scores) / max(len(scores), 1), "scored_thoughts": len(scores)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["chunks", "select", "importance"])
    parser.add_argument("--traces", required=True, help="the traces JSONL (id, thinking)")
    parser.add_argument("--chunks", help="`longshort chunk` output")
    parser.add_argument("--scored", help="`longshort score` output")
    parser.add_argument("--tokenizer", help="select: count tokens with this model folder's tokenizer")
    parser.add_argument("--max-tokens", type=int, help="select: most thinking tokens")
    parser.add_argument("--limit", type=int, help="select: how many traces")
    parser.add_argument("--output", help="select: where the chosen traces go")
    args = parser.parse_args(argv)
    from longshort.jsonl import read_traces

    if args.what == "select":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
        lines = [line for line in open(args.traces) if line.strip()]
        size = lambda line: len(tokenizer(json.loads(line)["thinking"], add_special_tokens=False)["input_ids"])  # noqa
        fits = [line for line in lines if size(line) <= args.max_tokens]
        with open(args.output, "w") as f:
            f.writelines(fits[:args.limit])
        print(f"{min(len(fits), args.limit)} of {len(lines)} traces into {args.output}")
        return 0
    if args.what == "chunks":
        records = [json.loads(line) for line in open(args.chunks)]
        figures = chunk_figures(dict(read_traces(args.traces)), records)
    else:
        figures = importance_figures([json.loads(line) for line in open(args.scored)])
    print(json.dumps(figures, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
