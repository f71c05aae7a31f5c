"""Metrics of one benchmark × mode, derived from its transcripts.

pass@1 is the mean over problems of each problem's share of correct samples, with the standard error of that
mean across problems; pass@k is the unbiased estimator of Chen et al. (2021), 1 - C(n-c, k) / C(n, k), averaged
over problems. Token counts, turns, folds and peak context are means per transcript; so are wall time, model calls
(requests sent to the agents, a router's lookahead included) and lookahead tokens, from the mode's timing; ``stops``
counts the transcripts by why they ended (answered, budget, context, malformed, timeout).
"""
from __future__ import annotations

import math
from collections import Counter, defaultdict

from longshort.grader import grade
from longshort.memory import render
from longshort.transcript import Transcript


def pass_at_k(n: int, c: int, k: int) -> float:
    """Chance that at least one of k samples drawn from n (c of them correct) is correct."""
    if n - c < k:
        return 1.0
    return 1.0 - math.prod((n - c - i) / (n - i) for i in range(k))


def correct(t: Transcript) -> bool:
    return t.answer is not None and grade(t.problem.kind, t.answer, t.problem.answer, delimited=True)


def mode_metrics(transcripts: list[Transcript], ks: tuple[int, ...], timing: dict) -> dict:
    """The row of the report for one benchmark × mode; ``timing`` holds the mode's summed wall and model time and the
    tokens generated in that time (kept across resumed runs; empty when unknown)."""
    by_problem: dict[str, list[bool]] = defaultdict(list)
    for t in transcripts:
        by_problem[t.problem.id].append(correct(t))
    shares = [sum(v) / len(v) for v in by_problem.values()]
    count = len(transcripts) or 1
    mean = lambda values: sum(values) / count  # noqa: E731
    n = min((len(v) for v in by_problem.values()), default=0)
    row = {
        "problems": len(by_problem),
        "samples": len(transcripts),
        "pass@1": sum(shares) / len(shares) if shares else 0.0,
        "pass@1_se": _standard_error(shares),
        **{f"pass@{k}": sum(pass_at_k(len(v), sum(v), k) for v in by_problem.values()) / len(by_problem)
           for k in ks if 1 < k <= n and by_problem},
        "answered": mean([t.stop_reason == "answered" for t in transcripts]),
        "stops": dict(sorted(Counter(t.stop_reason for t in transcripts).items())),  # why each transcript ended
        "long_tokens": mean([t.tokens("long") for t in transcripts]),
        "short_tokens": mean([t.tokens("short") for t in transcripts]),
        "tokens": mean([t.tokens() for t in transcripts]),
        "turns": mean([len(t.turns) for t in transcripts]),
        "folds": mean([t.folds for t in transcripts]),
        "self_folds": mean([t.self_folds for t in transcripts]),  # summaries the writer opened itself
        "peak_context": mean([t.peak_context for t in transcripts]),
        "wall_s": round(timing.get("wall_s", 0.0), 2),
        # per transcript, over the transcripts the timing covers (a mode's wall time is shared by its batch)
        **{key: timing[total] / timing["transcripts"] if timing.get("transcripts") else None
           for key, total in (("sample_s", "wall_s"), ("calls", "calls"), ("lookahead_tokens", "router_tokens"))},
        "tokens_per_s": timing["tokens"] / timing["wall_s"] if timing.get("wall_s") else None,
        # the orchestrator's own share of the wall time (routing, rendering, bookkeeping): all but the model calls
        "orchestrator_share": 1 - timing["backend_s"] / timing["wall_s"] if timing.get("wall_s") else None,
    }
    return row


def _standard_error(values: list[float]) -> float:
    if len(values) < 2:
        return 0.0
    mean = sum(values) / len(values)
    return math.sqrt(sum((v - mean) ** 2 for v in values) / (len(values) - 1) / len(values))


def context_per_turn(transcript: Transcript) -> list[int]:
    """The context length at the end of each turn under the transcript's memory policy: a ramp when unfolded, a
    saw-tooth when folded."""
    lengths = []
    partial = Transcript(transcript.problem, transcript.prompt_ids, memory=transcript.memory)
    for turn in transcript.turns:
        lengths.append(len(render(partial)) + len(turn.ids))
        partial.turns.append(turn)
    return lengths
