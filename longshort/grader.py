"""Answer grading for the benchmarks: does a model's prediction match the gold answer?

Kinds:
  math      -- MATH-500, AIME, AMC; extraction and equivalence by math-verify (symbolic and numeric).
  mcq       -- GPQA; the option letter A-D.
  gsm8k     -- GSM8K; a single number.
  synthetic -- our generated tasks; the exact string.

A prediction comes in one of two shapes, and the caller says which:
  free text  (``delimited=False``) -- what a model wrote: a whole solution, possibly after ``<think>...</think>``.
             Only the part after the last ``</think>`` is graded (an unclosed ``<think>`` means no final answer;
             math-verify knows nothing of think blocks). For math the answer is found by math-verify's own
             extraction with its default settings: the last box, "the final answer is ...", the last math
             expression or number, units and currency, relations, matrices, several boxes read as a set.
  delimited  (``delimited=True``) -- the text between the protocol's answer tags (``transcript.answer``): already
             the answer, usually bare (``\\frac{7}{3}``, ``34``, ``x=2``). For math it is read whole, as one
             expression inside ``$...$``, unless it carries math delimiters of its own (``$...$``, ``\\boxed{}``),
             which math-verify then reads as in free text. Gold answers are always read this way.
One reading of our own applies to both: digits grouped by threes with a space ("1 000", ``1\\,000``) are joined,
since inside math math-verify reads them as a product.

Math runs in worker processes (``longshort.math_worker``). math-verify's own time limit uses ``signal.alarm``,
which raises off the main thread (Ray's async actors grade on their event-loop thread) and cannot interrupt
sympy's arithmetic in C (``10^{10^{10}}``); a thread cannot be stopped at all. A process can be killed, so each
call waits at most ``TIME_LIMIT_S`` for its worker's reply; a worker that overruns is killed and replaced at
once, and the call grades as incorrect and is counted in ``grading_stats()``. The workers are plain
subprocesses talking JSON lines, not multiprocessing ones: those re-import the caller's main script (spawn) or
copy a threaded process (fork). A round trip costs about 0.2 ms, beside a median 1.5 ms for math-verify's own
work (eval/bench_grader.py). Workers are shared by the threads of a process (up to ``MAX_WORKERS``, started on
demand, about 70 MB each) and never across a fork: a forked child starts its own. A call may first wait for a
free worker, or for one that is starting (0.3 s), which the limit does not count.
"""
from __future__ import annotations

import json
import logging
import os
import re
import select
import signal
import subprocess
import sys
import threading
import time
from decimal import Decimal
from pathlib import Path

from longshort.problem import KINDS

TIME_LIMIT_S = 5.0  # per math grading call; a call past it grades as incorrect
STARTUP_LIMIT_S = 120.0  # for a new worker to import sympy and math-verify (about 0.3 s when the disk is warm)
MAX_WORKERS = 4  # math workers per process; more threads than this wait for one to be free

log = logging.getLogger(__name__)

_BOXED_OR_BRACE = re.compile(r"\\boxed\s*\{|\\.|[{}]", re.DOTALL)
# An option letter standing alone. Lower case counts only when no word follows ("answer: c"),
# so that the article in "the answer is a bit unclear" is not read as option A.
_OPTION = r"(?<![\w\\-])(?:[A-D]|[a-d](?![ \t]*[A-Za-z]))(?![\w-])"
_ANSWER_IS = re.compile(
    r"(?i:answer(?:\s+is)?)[\s*$({\[:=]*(?:\\text(?:bf)?\{)?(?i:option\s+)?(" + _OPTION + ")"
)
# Thousands separators are allowed only in groups of three, so "1,2,3" reads as three numbers.
# A minus sign counts only where it cannot be subtraction ("5-3" ends in 3, not -3).
_NUMBER = re.compile(r"(?<![\w.])-?(?:(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?|\.\d+)(?!\d)")


class GradingError(RuntimeError):
    """The math worker failed in a way that is not the prediction's fault (it did not start, or raised)."""


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}``; braces are balanced, escaped ones ignored.

    A generation cut off inside its final box falls back to the box before it. One pass over the text.
    """
    found, found_start = None, -1
    depth, open_boxes = 0, []  # the depth outside each open box, and where its content starts
    for match in _BOXED_OR_BRACE.finditer(text):
        token = match.group()
        if token == "}":
            depth -= 1
            if open_boxes and open_boxes[-1][0] == depth:
                _, start = open_boxes.pop()
                if start > found_start:
                    found, found_start = text[start : match.start()], start
        elif token == "{":
            depth += 1
        elif token.startswith("\\boxed"):
            open_boxes.append((depth, match.end()))
            depth += 1
    return found


def extract_answer(kind: str, prediction: str, *, delimited: bool = False) -> str | None:
    """The part of ``prediction`` that ``grade`` compares with the gold; None if there is none."""
    _check_kind(kind)
    text = _graded_text(prediction, delimited)
    if text is None or not text.strip():
        return None
    if kind == "math":
        reply = _ask_math({"op": "read", "text": text, "whole": delimited})
        return None if reply is None else reply["answer"]
    if kind == "mcq":
        return _extract_option(text)
    if kind == "gsm8k":
        boxed = last_boxed(text)
        numbers = _NUMBER.findall(text if boxed is None else boxed)
        return _plain_number(numbers[-1]) if numbers else None
    return text.strip()


def grade(kind: str, prediction: str, gold: str, *, delimited: bool = False) -> bool:
    """True when the answer in ``prediction`` is equivalent to ``gold``.

    Raises ValueError when ``gold`` is missing or unreadable (as ``check_gold`` does); a math call that runs past
    ``TIME_LIMIT_S`` returns False and is counted.
    """
    gold = _gold_text(kind, gold)
    if kind == "math":
        text = _graded_text(prediction, delimited)
        if text is None or not text.strip():
            return False
        reply = _ask_math({"op": "grade", "gold": gold, "prediction": text, "whole": delimited})
        if reply is None:
            return False
        if not reply["gold"]:
            raise ValueError(f"the math grader cannot read the gold answer {gold!r}")
        return reply["correct"]
    expected = _gold_value(kind, gold)
    answer = extract_answer(kind, prediction, delimited=delimited)
    if answer is None:
        return False
    return (Decimal(answer) if kind == "gsm8k" else answer) == expected


def check_gold(kind: str, gold: str) -> None:
    """Raise ValueError when ``grade`` could never match ``gold`` (so every sample would count as wrong)."""
    gold = _gold_text(kind, gold)
    if kind != "math":
        _gold_value(kind, gold)
        return
    reply = _ask_math({"op": "read", "text": gold, "whole": True})
    if reply is None:
        raise ValueError(f"the math grader took over {TIME_LIMIT_S:g} s to read the gold answer {gold!r}")
    if reply["answer"] is None:
        raise ValueError(f"the math grader cannot read the gold answer {gold!r}")


def grading_stats() -> dict:
    """Counts of this process's math grading: calls, timeouts, worker crashes and worker starts."""
    with _pool.lock:
        return dict(_pool.stats)


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ValueError(f"unknown answer kind {kind!r}; expected one of {', '.join(KINDS)}")


def _gold_text(kind: str, gold) -> str:
    """``gold`` as text, refused when it is missing: None, empty, or "None" (what a JSON null becomes under str)."""
    _check_kind(kind)
    if gold is None:
        raise ValueError("the gold answer is missing (None)")
    if not isinstance(gold, str):
        raise ValueError(f"the gold answer must be text, got {type(gold).__name__} {gold!r}")
    if not gold.strip():
        raise ValueError(f"the gold answer is empty ({gold!r})")
    if gold.strip() == "None":
        raise ValueError("the gold answer is 'None', a missing (null) answer written as text")
    return gold


def _gold_value(kind: str, gold: str):
    """What a non-math answer must equal: the letter, the number, or the stripped string."""
    if kind == "mcq":
        letter = gold.strip().upper()
        if letter not in ("A", "B", "C", "D"):
            raise ValueError(f"the mcq grader cannot read the gold answer {gold!r}: not a letter A-D")
        return letter
    if kind == "gsm8k":
        number = _plain_number(gold.rsplit("####", 1)[-1])
        if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)", number):
            raise ValueError(f"gsm8k gold answer is not a number: {gold!r}")
        return Decimal(number)
    return gold.strip()


def _graded_text(prediction: str, delimited: bool) -> str | None:
    """The text that holds the answer. math-verify knows nothing of reasoning models' think blocks, so free text
    is cut here: after the last ``</think>``, or nothing when a ``<think>`` never closed (thinking cut short)."""
    if delimited:
        return prediction
    _, closed, response = prediction.rpartition("</think>")
    if closed:
        return response
    return None if "<think>" in prediction else prediction


def _extract_option(prediction: str) -> str | None:
    """The chosen letter: from the last box, else the last "answer is"/"Answer:", else the last lone letter."""
    boxed = last_boxed(prediction)
    candidates = [
        re.findall(_OPTION, boxed) if boxed is not None else [],
        _ANSWER_IS.findall(prediction),
        re.findall(_OPTION, prediction),
    ]
    for letters in candidates:
        if letters:
            return letters[-1].upper()
    return None


def _plain_number(text: str) -> str:
    """``$1,234.50`` -> ``1234.50``: what Decimal can read."""
    return re.sub(r"[,$\s]", "", text)


# --- math worker processes ------------------------------------------------------------------------------------


class _WorkerGone(Exception):
    """The worker had exited before it got the request (killed while idle): the request can go to another."""


class _WorkerDied(Exception):
    """The worker exited while it worked on the request."""


class _Worker:
    """One ``longshort.math_worker`` process and its pipes; used by one thread at a time."""

    def __init__(self):
        # Run by its path, so that it is this very file whatever sys.path the caller has.
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).with_name("math_worker.py"))], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, bufsize=0,  # unbuffered: a fork never copies half a request
        )
        self.poll = select.poll()  # not select.select: its descriptors must be below 1024
        self.poll.register(self.process.stdout.fileno(), select.POLLIN)
        self.pending = b""
        self.ready = False

    def ask(self, request: dict, limit: float) -> dict | None:
        """The worker's reply, or None when it did not come within ``limit`` seconds."""
        if not self.ready:
            try:
                hello = self._reply(time.monotonic() + STARTUP_LIMIT_S)
            except _WorkerDied:
                raise GradingError(f"the math grading worker exited with status {self.process.wait()} before it "
                                   "was ready (its error is printed above)") from None
            if hello != {"ready": True}:
                raise GradingError(f"the math grading worker did not start within {STARTUP_LIMIT_S:g} s")
            self.ready = True
        data = memoryview(json.dumps({**request, "limit": limit}).encode() + b"\n")
        try:
            while data:
                data = data[self.process.stdin.write(data):]
        except BrokenPipeError:
            raise _WorkerGone from None
        return self._reply(time.monotonic() + limit)

    def _reply(self, deadline: float) -> dict | None:
        while b"\n" not in self.pending:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not self.poll.poll(remaining * 1000):
                return None
            chunk = self.process.stdout.read(1 << 16)
            if not chunk:
                raise _WorkerDied
            self.pending += chunk
        line, self.pending = self.pending.split(b"\n", 1)
        return json.loads(line)

    def kill(self) -> int:
        """Stop the process; its exit status (negative: the signal that ended it)."""
        self.process.kill()
        self.process.stdin.close()
        self.process.stdout.close()
        return self.process.wait()


class _Pool:
    """This process's math workers: idle ones wait in ``idle``; ``live`` counts idle and busy ones."""

    def __init__(self):
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.idle: list[_Worker] = []
        self.every: set[_Worker] = set()
        self.live = 0
        self.stats = {"calls": 0, "timeouts": 0, "crashes": 0, "worker_starts": 0}

    def checkout(self) -> _Worker:
        with self.changed:
            while not self.idle and self.live >= MAX_WORKERS:
                self.changed.wait()
            if self.idle:
                return self.idle.pop()
            self.live += 1
        return self._start()

    def checkin(self, worker: _Worker) -> None:
        with self.changed:
            self.idle.append(worker)
            self.changed.notify()

    def retire(self, worker: _Worker, replace: bool) -> int:
        """Kill ``worker`` and return its exit status; with ``replace``, a new worker starts in its place at
        once, so that the next call does not wait for its imports."""
        with self.lock:
            self.every.discard(worker)
        status = worker.kill()
        if replace:
            self.checkin(self._start())
        else:
            self._give_up_place()
        return status

    def _start(self) -> _Worker:
        """A new worker in a place already counted in ``live``."""
        try:
            worker = _Worker()
        except BaseException:
            self._give_up_place()
            raise
        with self.lock:
            self.every.add(worker)
            self.stats["worker_starts"] += 1
        return worker

    def _give_up_place(self) -> None:
        with self.changed:
            self.live -= 1
            self.changed.notify()

    def count(self, what: str) -> int:
        with self.lock:
            self.stats[what] += 1
            return self.stats[what]


_pool = _Pool()


def _after_fork_in_child() -> None:
    """A forked child must not talk to its parent's workers: it drops its copies of their pipes and starts anew."""
    global _pool
    for worker in _pool.every:
        worker.process.stdin.close()
        worker.process.stdout.close()
    _pool = _Pool()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _ask_math(request: dict) -> dict | None:
    """A math worker's reply to ``request``; None when it ran past the time limit or died on this input (the
    worker is then killed and replaced, and the event counted and logged)."""
    pool = _pool
    pool.count("calls")
    while True:
        worker = pool.checkout()
        try:
            reply = worker.ask(request, TIME_LIMIT_S)
            died = False
        except _WorkerGone:
            status = pool.retire(worker, replace=False)
            log.warning("a math grading worker had exited (status %s) while idle; another takes the request", status)
            pool.count("crashes")
            continue
        except _WorkerDied:
            reply, died = None, True
        except BaseException:  # it did not start, or we were interrupted mid-request: its state is unknown
            pool.retire(worker, replace=False)
            raise
        break
    if reply is not None:
        pool.checkin(worker)
        if "error" in reply:
            raise GradingError(f"the math grading worker failed on a {len(str(request))}-character request:\n"
                               f"{reply['error']}")
        return reply
    status = pool.retire(worker, replace=True)
    size = len(request.get("prediction", request.get("text", "")))
    # Past the limit, or ended by its own alarm (set for when no parent kills it): a timeout. Else a crash.
    if not died or status == -signal.SIGALRM:
        n = pool.count("timeouts")
        log.warning("math grading ran past %g s on a %d-character text; graded incorrect (%d timeouts in this "
                    "process)", TIME_LIMIT_S, size, n)
    else:
        n = pool.count("crashes")
        log.warning("the math grading worker died (exit status %s) on a %d-character text; graded incorrect (%d "
                    "crashes in this process)", status, size, n)
    return None
