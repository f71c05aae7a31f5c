"""JSONL in and out for long runs: inputs with errors that name the line, outputs appended as results finish.

A run killed mid-write leaves at most one partial last line; ``completed_keys`` drops it, so a rerun resumes
with every finished record exactly once.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Iterator

from longshort.problem import Problem


class InputError(ValueError):
    """A bad line in an input file, with the file and line named."""


def read_problems(path: str | Path, skip_bad: bool = False, default_kind: str = "synthetic") -> list[Problem]:
    """Problems from JSONL rows with ``question`` (and optional ``id``, ``answer``, ``kind``, ``source``)."""
    def problem(number: int, row: dict) -> Problem:
        answer = row.get("answer")
        return Problem(
            id=str(row.get("id", f"line-{number}")),
            question=str(row.get("question") or ""),
            answer="" if answer is None else str(answer),  # a null is no answer, not the text "None"
            source=str(row.get("source", Path(path).stem)),
            kind=str(row.get("kind", default_kind)),
        )

    return read_rows(path, skip_bad, problem)


def read_traces(path: str | Path, skip_bad: bool = False) -> list[tuple[str, str]]:
    """``(id, thinking)`` of JSONL rows with a ``thinking`` text; the line number stands in for a missing id."""
    lines: dict[str, int] = {}

    def trace(number: int, row: dict) -> tuple[str, str]:
        return trace_id(number, row, row.get("thinking"), lines), row["thinking"]

    return read_rows(path, skip_bad, trace)


def trace_id(number: int, row: dict, thinking, lines: dict[str, int]) -> str:
    """The id of the trace on line ``number`` (the line number stands in for a missing one), once it is checked to
    have ``thinking`` text and an id no earlier line has (outputs are keyed by id); ``lines`` records the ids seen."""
    found = str(row.get("id", f"line-{number}"))
    if not isinstance(thinking, str) or not thinking.strip():
        raise ValueError(f"trace {found}: no thinking text")
    if lines.setdefault(found, number) != number:
        raise ValueError(f"trace {found}: the id is also on line {lines[found]}")
    return found


def read_rows(path: str | Path, skip_bad: bool, parse) -> list:
    """``parse(number, row)`` of each row; a bad row stops the run with its file and line named, or is skipped."""
    items = []
    for number, row in numbered_rows(path):
        try:
            if isinstance(row, Exception):
                raise row
            if not isinstance(row, dict):
                raise ValueError(f"expected a JSON object, got {type(row).__name__}")
            items.append(parse(number, row))
        except ValueError as e:
            message = f"{path}, line {number}: {e}"
            if not skip_bad:
                raise InputError(message + " (pass --skip-bad to go on without it)") from None
            print(f"skipped {message}", file=sys.stderr)
    return items


def numbered_rows(path: str | Path) -> Iterator[tuple[int, object]]:
    """``(line number, parsed row)`` of each non-blank line; a line that cannot be read gives a ValueError instead."""
    with open(path, "rb") as f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield number, ValueError("not UTF-8")
            except json.JSONDecodeError as e:
                yield number, ValueError(f"not valid JSON ({e.msg})")


def completed_keys(path: str | Path, key) -> set:
    """Keys of the records already in ``path``; a partial last line from a killed run is cut off."""
    path = Path(path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    return {key(json.loads(line)) for line in data[:end].splitlines() if line.strip()}


class Appender:
    """Appends one JSON record per line and flushes it to disk before returning."""

    def __init__(self, path: str | Path):
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.file = open(path, "a", encoding="utf-8")

    def write(self, record: dict) -> None:
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        os.fsync(self.file.fileno())

    def close(self) -> None:
        self.file.close()
