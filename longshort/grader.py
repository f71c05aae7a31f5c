"""Answer grading for the benchmarks: does a model's prediction match the gold answer?

Kinds:
  math      -- MATH-500, AIME, AMC; equivalence is decided by math-verify (symbolic and numeric).
  mcq       -- GPQA; the option letter A-D.
  gsm8k     -- GSM8K; a single number.
  synthetic -- our generated tasks; the exact string.

Predictions are free-form model outputs. ``extract_answer`` pulls out the part that is graded,
so that reports can show what was compared; ``grade`` compares it with the gold.
"""
from __future__ import annotations

import re
from decimal import Decimal

from math_verify import LatexExtractionConfig, parse, verify

KINDS = ("math", "mcq", "gsm8k", "synthetic")

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


def extract_answer(kind: str, prediction: str) -> str | None:
    """The part of ``prediction`` that ``grade`` compares with the gold; None if there is none."""
    if kind == "math":
        # Without a box the whole prediction is the answer: a run that lost its box (usually
        # truncated) is not searched for a plausible-looking final number.
        answer = last_boxed(prediction)
        answer = (prediction if answer is None else answer).strip()
        return answer or None
    if kind == "mcq":
        return _extract_option(prediction)
    if kind == "gsm8k":
        boxed = last_boxed(prediction)
        numbers = _NUMBER.findall(prediction if boxed is None else boxed)
        return _plain_number(numbers[-1]) if numbers else None
    if kind == "synthetic":
        return prediction.strip()
    raise ValueError(f"unknown answer kind {kind!r}; expected one of {', '.join(KINDS)}")


def grade(kind: str, prediction: str, gold: str) -> bool:
    """True when the answer extracted from ``prediction`` is equivalent to ``gold``."""
    answer = extract_answer(kind, prediction)
    if answer is None:
        return False
    if kind == "math":
        return verify(_parse_math(gold), _parse_math(answer))
    if kind == "mcq":
        return answer == gold.strip().upper()
    if kind == "gsm8k":
        return Decimal(answer) == _gsm8k_gold(gold)
    return answer == gold.strip()


def check_gold(kind: str, gold: str) -> None:
    """Raise ValueError when ``grade`` could never match ``gold`` (so every sample would count as wrong)."""
    usable = {
        "math": lambda: bool(_parse_math(gold)),
        "mcq": lambda: gold.strip().upper() in ("A", "B", "C", "D"),
        "gsm8k": lambda: _gsm8k_gold(gold) is not None,
        "synthetic": lambda: bool(gold.strip()),
    }
    if kind not in usable:
        raise ValueError(f"unknown answer kind {kind!r}; expected one of {', '.join(KINDS)}")
    if not usable[kind]():
        raise ValueError(f"the {kind} grader cannot read the gold answer {gold!r}")


def _parse_math(answer: str) -> list:
    """Parse a bare answer with math-verify.

    math-verify only reads LaTeX inside math delimiters (``\\frac12`` alone parses to nothing),
    so the answer is wrapped in ``$...$``; plain numbers such as ``23.0`` parse that way too.
    An answer that already has delimiters still parses: math-verify takes the math inside.
    """
    return parse(f"${answer}$", extraction_config=[LatexExtractionConfig()])


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


def _gsm8k_gold(gold: str) -> Decimal:
    """The number after GSM8K's ``####`` marker, or the gold itself when it is already bare."""
    number = _plain_number(gold.rsplit("####", 1)[-1])
    if not re.fullmatch(r"-?(\d+(\.\d*)?|\.\d+)", number):
        raise ValueError(f"gsm8k gold answer is not a number: {gold!r}")
    return Decimal(number)
