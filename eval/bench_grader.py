"""The math grader against math-verify's defaults, per category of eval/grading_cases.py, and its speed.

    python eval/bench_grader.py [--repeat 3]

Agreement is with math-verify as its README uses it, ``verify(parse(gold), parse(prediction))`` with default
settings, run here on the main thread. Bare answers (the delimited cases and their golds) are handed to it inside
``$...$``, as that README does for LaTeX. Right is agreement with the hand-decided verdict of each case, for both.
Time is per ``grade`` call through the worker process, after one warm-up call; the worker's start is timed apart.
The overhead of the worker is the median over cases of (``grade`` time - the same work done in this process).
Last, a few pathological predictions show the worst case: each ends by the time limit, as incorrect.
"""
from __future__ import annotations

import argparse
import logging
import statistics
import time


PATHOLOGICAL = {
    "14,000 unclosed boxes": r"\boxed{" * 14000,
    "\\frac nested 3,000 deep": "$" + r"\frac{1}{" * 3000 + "2" + "}" * 3000 + "$",
    "10^{10^{10}}": r"$\boxed{10^{10^{10}}}$",
}


def reference(case) -> bool:
    from math_verify import parse, verify

    def present(text: str) -> str:
        return f"${text}$" if case.delimited else text

    return bool(verify(parse(present(case.gold)), parse(present(case.prediction))))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3, help="grade every case this many times for the timings")
    args = parser.parse_args(argv)

    from longshort import grader
    from longshort.eval.grading_cases import CASES, CATEGORIES
    from longshort.math_worker import handle

    start = time.perf_counter()
    grader.grade("math", "1", "1", delimited=True)  # starts the worker
    startup = time.perf_counter() - start

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # as in the worker: its own timeouts are off
    handle({"op": "grade", "gold": "1", "prediction": "1", "whole": True})  # the same warm-up in this process
    times, overheads = [], []
    for _ in range(args.repeat):  # round after round, so that math-verify's small caches do not answer a repeat
        ours = []
        for case in CASES:
            request = {"op": "grade", "gold": case.gold, "prediction": case.prediction, "whole": case.delimited}
            start = time.perf_counter()
            ours.append(grader.grade("math", case.prediction, case.gold, delimited=case.delimited))
            middle = time.perf_counter()
            handle(request)
            times.append(middle - start)
            overheads.append((middle - start) - (time.perf_counter() - middle))
    theirs = [reference(case) for case in CASES]

    print(f"{'category':<28} {'cases':>5} {'agree':>7} {'ours right':>10} {'m-v right':>9}")
    rows = [(c, [i for i, case in enumerate(CASES) if case.category == c]) for c in CATEGORIES]
    for name, members in rows + [("overall", list(range(len(CASES))))]:
        def share(hits) -> str:
            return f"{100 * sum(hits) / len(members):.1f}%"

        print(f"{name:<28} {len(members):>5} {share(ours[i] == theirs[i] for i in members):>7} "
              f"{share(ours[i] == CASES[i].correct for i in members):>10} "
              f"{share(theirs[i] == CASES[i].correct for i in members):>9}")
    for i, case in enumerate(CASES):
        if ours[i] != theirs[i]:
            print(f"  differs ({case.category}): gold {case.gold!r}, prediction {case.prediction!r}: "
                  f"ours {ours[i]}, math-verify {theirs[i]}, right {case.correct}")

    ms = sorted(t * 1e3 for t in times)
    print(f"\ntime per grade call ({len(ms)} calls): median {statistics.median(ms):.2f} ms, "
          f"p90 {ms[int(0.9 * (len(ms) - 1))]:.2f} ms, max {ms[-1]:.2f} ms; worker start {startup * 1e3:.0f} ms; "
          f"worker overhead per call: median {statistics.median(overheads) * 1e3:.2f} ms")
    for name, prediction in PATHOLOGICAL.items():
        start = time.perf_counter()
        verdict = grader.grade("math", prediction, "5")
        print(f"pathological, {name}: {'correct' if verdict else 'incorrect'} in {time.perf_counter() - start:.2f} s")
    print(f"time limit per call {grader.TIME_LIMIT_S:g} s; grading stats {grader.grading_stats()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
