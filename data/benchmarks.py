"""The evaluation benchmarks as ``Problem``s, from the Hugging Face hub or from local JSONL files.

Each benchmark is read from ``DIR/<name>.jsonl`` when a data folder is given (offline machines, tests), else from
its hub dataset through ``datasets``. Fields are normalized: the text is ``problem`` or ``question``; numeric answers
become their shortest string (``27.0`` -> ``27``); GSM8K's worked answer becomes the number after ``####``; GPQA's
answer is an option letter, and a row with the hub's separate correct and incorrect answers gets its options
shuffled into the question with a seed of its own.
"""
from __future__ import annotations

import random
import re
from dataclasses import dataclass
from pathlib import Path

from longshort.problem import Problem


@dataclass(frozen=True)
class Benchmark:
    kind: str  # the grader: math | mcq | gsm8k | synthetic
    hub: str = ""  # Hugging Face dataset name
    subset: str | None = None
    split: str = "test"


BENCHMARKS = {
    "math500": Benchmark("math", "HuggingFaceH4/MATH-500"),
    "aime24": Benchmark("math", "math-ai/aime24"),
    "aime25": Benchmark("math", "math-ai/aime25"),
    "amc23": Benchmark("math", "math-ai/amc23"),
    "gpqa_diamond": Benchmark("mcq", "Idavidrein/gpqa", "gpqa_diamond", "train"),
    "gsm8k": Benchmark("gsm8k", "openai/gsm8k", "main"),
    "synthetic": Benchmark("synthetic"),  # the tiny world's held-out problems
}


class BenchmarkError(ValueError):
    """A benchmark that cannot be loaded, or a row of one that cannot be used, with the place named."""


def load_benchmark(name: str, data_dir: str | Path | None = None, limit: int | None = None,
                   tiny=None) -> list[Problem]:
    """The first ``limit`` problems of benchmark ``name``; ``tiny`` (a TinyWorldConfig) defines ``synthetic``."""
    if name not in BENCHMARKS:
        raise BenchmarkError(f"unknown benchmark '{name}'; known: {', '.join(BENCHMARKS)}")
    spec = BENCHMARKS[name]
    if name == "synthetic":
        from longshort.config import TinyWorldConfig
        from longshort.data.tiny_world import as_problem, problems

        return [as_problem(p, i) for i, p in enumerate(problems(tiny or TinyWorldConfig()).heldout[:limit])]
    if data_dir is not None:
        path = Path(data_dir) / f"{name}.jsonl"
        if not path.exists():
            raise BenchmarkError(f"benchmark '{name}': {path} does not exist")
        rows = _jsonl(path, limit)
        where = str(path)
    else:
        rows = _hub(spec, limit)
        where = spec.hub
    problems = [normalize(name, spec.kind, row, number, where) for number, row in enumerate(rows, 1)]
    rows_of: dict[str, int] = {}
    for number, problem in enumerate(problems, 1):  # results are keyed by id: two rows of one id would merge
        if rows_of.setdefault(problem.id, number) != number:
            raise BenchmarkError(f"{where}, row {number}: the id {problem.id} is also on row {rows_of[problem.id]}")
    return problems


def normalize(name: str, kind: str, row: dict, number: int, where: str) -> Problem:
    """One row as a Problem; ``number`` (1-based) names the row in errors and stands in for a missing id."""
    try:
        if not isinstance(row, dict):
            raise ValueError(f"expected a JSON object, got {type(row).__name__}")
        if kind == "mcq" and "Correct Answer" in row:
            question, answer = _shuffled_options(row, number)
        else:
            question = row.get("problem") or row.get("question") or row.get("Question")
            answer = row.get("answer")
        if not isinstance(question, str) or not question.strip():
            raise ValueError("no problem or question text")
        if answer is None or str(answer).strip() == "":
            raise ValueError("no answer")
        answer = _answer(kind, answer)
        row_id = next((row[k] for k in ("id", "unique_id", "idx", "Record ID") if row.get(k) is not None), number)
        return Problem(id=f"{name}-{row_id}", question=question, answer=answer, source=name, kind=kind)
    except ValueError as e:
        raise BenchmarkError(f"{where}, row {number}: {e}") from None


def _answer(kind: str, answer) -> str:
    if isinstance(answer, float) and answer.is_integer():
        answer = int(answer)
    text = str(answer).strip()
    if kind == "gsm8k":
        text = text.rsplit("####", 1)[-1].strip().replace(",", "")
    if kind == "mcq":
        text = text.upper()
        if text not in ("A", "B", "C", "D"):
            raise ValueError(f"the answer {text!r} is not an option letter A-D")
    return text


def _shuffled_options(row: dict, number: int) -> tuple[str, str]:
    """GPQA as published: one correct and three incorrect answers; options in a per-row seeded order."""
    options = [row["Correct Answer"]] + [row[f"Incorrect Answer {k}"] for k in (1, 2, 3)]
    order = list(range(4))
    random.Random(f"gpqa-{row.get('Record ID', number)}").shuffle(order)
    lines = "\n".join(f"{'ABCD'[pos]}) {str(options[i]).strip()}" for pos, i in enumerate(order))
    return f"{row['Question'].strip()}\n\n{lines}", "ABCD"[order.index(0)]


def _jsonl(path: Path, limit: int | None) -> list[dict]:
    from longshort.jsonl import numbered_rows

    rows = []
    for number, row in numbered_rows(path):
        if isinstance(row, Exception):
            raise BenchmarkError(f"{path}, line {number}: {row}")
        rows.append(row)
        if limit is not None and len(rows) >= limit:
            break
    return rows


def _hub(spec: Benchmark, limit: int | None) -> list[dict]:
    try:
        from datasets import load_dataset
    except ImportError:
        raise BenchmarkError("loading from the hub needs `pip install datasets`; or pass a local data folder") from None
    split = spec.split if limit is None else f"{spec.split}[:{limit}]"
    try:
        return list(load_dataset(spec.hub, spec.subset, split=split))
    except Exception as e:  # datasets raises many types: offline, gated, missing
        raise BenchmarkError(f"cannot load {spec.hub} from the hub ({type(e).__name__}: {e}); "
                             "pass a local data folder with <name>.jsonl instead") from None


def names(text: str) -> list[str]:
    """``"math500, gsm8k"`` -> the benchmark names, each checked."""
    chosen = [n for n in re.split(r"[,\s]+", text) if n]
    unknown = [n for n in chosen if n not in BENCHMARKS]
    if unknown or not chosen:
        raise BenchmarkError(f"unknown benchmark(s) {', '.join(unknown) or '(none named)'}; known: "
                             f"{', '.join(BENCHMARKS)}")
    return chosen
