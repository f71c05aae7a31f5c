"""The math grading worker: a child process that reads and compares answers with math-verify.

``longshort.grader`` runs this file as a script and talks to it in JSON lines on its stdin and stdout; it needs
nothing of longshort, only math-verify. math-verify's signal-based timeouts are off: the parent enforces the time
limit by killing the process, which also stops work that a signal cannot interrupt (sympy's arithmetic in C).

Requests: ``{"op": "grade", "gold", "prediction", "whole", "limit"}`` answers ``{"gold": readable, "correct"}``;
``{"op": "read", "text", "whole", "limit"}`` answers ``{"answer": the extracted answer or null}``.
``whole`` is true when the text is an answer as a whole (a gold, or the text between answer tags) and false for
a model's free text. A request that fails answers ``{"error": traceback}``.
"""
from __future__ import annotations

import functools
import json
import math
import os
import re
import resource
import signal
import sys
import traceback

# Address space the worker may use (it needs about 70 MB). sympy asked for 2^(2^65536) grows by gigabytes a
# minute; past this it gets a MemoryError, which math-verify treats as a failed comparison.
MEMORY_LIMIT_BYTES = 2 << 30

# A math delimiter that math-verify's extraction looks for: an unescaped $, \( or \[, or a box.
_DELIMITED = re.compile(r"(?<!\\)(?:\$|\\\(|\\\[)|\\boxed")  # "\\[2pt]" in a matrix is no delimiter
# Digits grouped by threes with a space or a LaTeX thin space ("1 000", "12\,345"). Inside $...$ math-verify
# reads "1 000" as the product 1*000; the groups are joined first. Not after a decimal point ("3.141 592").
_GROUPED = re.compile(r"(?<![\d.])\d{1,3}(?:(?:[ \u00a0\u2009\u202f~]|\\[,;: ])\d{3})+(?![\d])")
_SEPARATOR = re.compile(r"[ \u00a0\u2009\u202f~]|\\[,;: ]")


def join_digit_groups(text: str) -> str:
    return _GROUPED.sub(lambda m: _SEPARATOR.sub("", m.group()), text)


def read(text: str, whole: bool) -> list:
    """math-verify's reading of ``text``: a list of a sympy object and its LaTeX string, [] when nothing is found.

    Free text goes to math-verify's own extraction unchanged (last box, "final answer is", last math, last
    number, units and currency, several boxes as a set). A whole answer without math delimiters (``\\frac{7}{3}``,
    ``x=2``) is one expression: it is put inside ``$...$``, which is how math-verify expects bare LaTeX; its
    extraction would otherwise pick a number out of it (``3\\sqrt{13}`` reads as 3).
    """
    from math_verify import parse

    text = join_digit_groups(text)
    if whole and not _DELIMITED.search(text):
        text = "$" + text.replace("\n", " ") + "$"
    return parse(text, parsing_timeout=None)


@functools.lru_cache(maxsize=4096)
def read_gold(gold: str) -> list:
    """Golds repeat (every sample of a problem is graded against the same one), so their readings are kept."""
    return read(gold, whole=True)


def answer_text(parsed: list) -> str | None:
    """The extracted answer as text: math-verify's LaTeX string of it."""
    if not parsed:
        return None
    return next((x for x in reversed(parsed) if isinstance(x, str)), str(parsed[0]))


def handle(request: dict) -> dict:
    from math_verify import verify

    if request["op"] == "grade":
        gold = read_gold(request["gold"])
        if not gold:
            return {"gold": False, "correct": False}
        prediction = read(request["prediction"], request["whole"])
        return {"gold": True, "correct": bool(verify(gold, prediction, timeout_seconds=None))}
    if request["op"] == "read":
        return {"answer": answer_text(read(request["text"], request["whole"]))}
    raise ValueError(f"unknown request {request['op']!r}")


def main() -> None:
    # The protocol owns the real stdout; anything printed by libraries goes to stderr instead.
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; we exit when it closes stdin
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))
    import logging

    logging.getLogger("math_verify").setLevel(logging.ERROR)  # it warns that its own timeouts are off
    handle({"op": "grade", "gold": "1", "prediction": "$1$", "whole": False})  # load the LaTeX parser once
    protocol.write('{"ready": true}\n')
    protocol.flush()
    for line in sys.stdin:
        request = json.loads(line)
        # The parent kills us at the limit; this alarm (whose default action ends the process) is for when the
        # parent is gone and no one will.
        signal.alarm(math.ceil(request["limit"]) + 2)
        try:
            reply = handle(request)
        except Exception:
            reply = {"error": traceback.format_exc()}
        signal.alarm(0)
        protocol.write(json.dumps(reply) + "\n")
        protocol.flush()


if __name__ == "__main__":
    # As a script, this file's folder leads sys.path; its modules (config, memory, ...) must shadow nothing.
    if sys.path and os.path.realpath(sys.path[0]) == os.path.dirname(os.path.realpath(__file__)):
        del sys.path[0]
    try:
        main()
    except BrokenPipeError:  # the parent exited while we worked or started: nobody to answer
        pass
