"""JSONL in and out for long runs: inputs with errors that name the line, outputs appended as results finish.

A run killed mid-write leaves at most one partial last line; ``completed_keys`` drops it, so a rerun resumes
with every finished record exactly once.
"""
from __future__ import annotations

import json
import math
import os
import sys
from pathlib import Path
from typing import Iterator

from longshort.problem import Problem


class InputError(ValueError):
    """A bad line in an input file, with the file and line named."""


def read_problems(path: str | Path, skip_bad: bool = False, default_kind: str = "synthetic") -> list[Problem]:
    """Problems from JSONL rows with ``question`` (and optional ``id``, ``answer``, ``kind``, ``source``). Texts must
    be texts (a number is not a question); a gold answer may be a text or a number, and null means none."""
    seen: dict[str, int] = {}

    def problem(number: int, row: dict) -> Problem:
        found = unique_id(number, row, None, "problem")
        made = Problem(
            id=found,
            question=text_field(row, "question", f"problem {found}"),
            answer=gold_text(row.get("answer"), f"problem {found}") or "",
            source=text_field(row, "source", f"problem {found}", Path(path).stem),
            kind=text_field(row, "kind", f"problem {found}", default_kind),
        )
        unique_id(number, row, seen, "problem")
        return made

    return read_rows(path, skip_bad, problem)


def read_traces(path: str | Path, skip_bad: bool = False) -> list[tuple[str, str]]:
    """``(id, thinking)`` of JSONL rows with a ``thinking`` text; the line number stands in for a missing id."""
    lines: dict[str, int] = {}

    def trace(number: int, row: dict) -> tuple[str, str]:
        return trace_id(number, row, row.get("thinking"), lines), row["thinking"]

    return read_rows(path, skip_bad, trace)


def trace_id(number: int, row: dict, thinking, lines: dict[str, int]) -> str:
    """The id of the trace on line ``number`` once it is checked to have ``thinking`` text and an id no earlier line
    has (``unique_id``); ``lines`` records the ids seen."""
    if not isinstance(thinking, str) or not thinking.strip():
        raise ValueError(f"trace {unique_id(number, row, None, 'trace')}: no thinking text")
    return unique_id(number, row, lines, "trace")


def unique_id(number: int, row: dict, lines: dict[str, int] | None, what: str) -> str:
    """The id of the row on line ``number``: its ``id``, a text or an integer, or ``line-N`` when it has none. Outputs
    are keyed by id, so an id an earlier line has is an error naming that line; ``lines`` (id -> line) records the
    ids seen, and None only reads the id."""
    value = row.get("id", f"line-{number}")
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise ValueError(f"the id must be a non-empty text or an integer, got {json.dumps(value)}")
    found = str(value)
    if lines is not None and lines.setdefault(found, number) != number:
        raise ValueError(f"{what} {found}: the id is also on line {lines[found]}")
    return found


def text_field(row: dict, key: str, what: str, default: str | None = None) -> str:
    """``row[key]``, which must be a text (``default`` when the key is absent or null and a default is given)."""
    value = row.get(key)
    if value is None and default is not None:
        return default
    if not isinstance(value, str):
        got = "nothing" if value is None else f"{type(value).__name__} {json.dumps(value)}"
        raise ValueError(f"{what}: '{key}' must be a text, got {got}")
    return value


def gold_text(value, what: str) -> str | None:
    """A gold answer as text: a text or a finite number as written; None when there is none (absent or null)."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return str(value)
    raise ValueError(f"{what}: the answer must be a text or a number, got {json.dumps(value)}")


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
    try:
        f = open(path, "rb")
    except OSError as e:
        raise InputError(f"cannot read {path}: {e.strerror or e}") from None
    with f:
        for number, raw in enumerate(f, 1):
            if not raw.strip():
                continue
            try:
                yield number, json.loads(raw.decode("utf-8"))
            except UnicodeDecodeError:
                yield number, ValueError("not UTF-8")
            except json.JSONDecodeError as e:
                yield number, ValueError(f"not valid JSON ({e.msg})")
            except (ValueError, RecursionError) as e:  # a number too long to convert, arrays nested too deep
                yield number, ValueError(f"not valid JSON ({type(e).__name__}: {str(e)[:80]})")


def completed_keys(path: str | Path, key) -> set:
    """Keys of the records already in ``path``; a partial last line from a killed run is cut off. Call it while
    holding the output's claim (longshort/runs.py): it may cut the file."""
    path = Path(path)
    if not path.exists():
        return set()
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    keys = set()
    for number, line in enumerate(data[:end].splitlines(), 1):
        if not line.strip():
            continue
        try:
            keys.add(key(json.loads(line)))
        except (ValueError, KeyError, TypeError) as e:
            raise InputError(f"{path}, line {number}: not a record this command writes ({type(e).__name__}: "
                             f"{str(e)[:80]}); write to another output, or delete it to start over") from None
    return keys


class Appender:
    """Appends one JSON record per line, on disk before ``write`` returns. A write that fails (a full disk) or is
    interrupted (Ctrl-C) is taken back whole, so the file never holds part of a record, and the error is one line."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def write(self, record: dict) -> None:
        data = memoryview((json.dumps(record) + "\n").encode("utf-8"))
        start = os.lseek(self.fd, 0, os.SEEK_END)
        try:
            while data:
                data = data[os.write(self.fd, data):]
            os.fsync(self.fd)
        except BaseException as e:
            os.ftruncate(self.fd, start)
            if isinstance(e, OSError):
                raise OSError(f"cannot write {self.path}: {e.strerror or e}") from None
            raise

    def close(self) -> None:
        os.close(self.fd)
