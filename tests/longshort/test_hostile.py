"""Hostile input, as a skeptical user would try it: every case ends in a correct result or in one clear error that
names the file, line or key, within its time bound, and no case that can fail before a model loads gets that far.

``CASES`` run model-free and in this process (``longshort.cli.main``), on a config whose model folders exist but
are empty, so that loading one would fail: an expected error proves that it came first. ``TINY_CASES`` run the
command on the tiny world and check the result. Each row: name, command (``TMP`` is the test's folder, ``CONFIG``
its config), config lines added, input files, a setup, the expected error fragment (``None``: success, and
``check`` looks at the result), and the bound in seconds.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BASE_CONFIG = """long: {path: TMP/models/long}
short: {path: TMP/models/short}
coldstart: {out_dir: TMP/coldstart}
rl: {out_dir: TMP/rl, init: null, problems: TMP/train.jsonl}
"""
QUESTION = "x=3.\nop1: +4.\nFind x modulo m=10."
GOOD = json.dumps({"id": "a", "question": QUESTION, "answer": "7"}) + "\n"
TRACE = json.dumps({"id": "t", "problem": QUESTION, "thinking": "3+4=7.\n\nSo x=7.", "answer": "7"}) + "\n"


@dataclass
class Case:
    name: str
    command: str  # split on spaces; TMP, CONFIG and the WORDS are replaced
    expect: str | None  # a fragment of the one-line error, or None for success
    config: str = ""  # YAML lines added to BASE_CONFIG (a section replaces its line), or a whole "---" document
    files: dict = field(default_factory=dict)  # name under TMP -> text or bytes
    setup: str | None = None  # a function of this module that prepares TMP: (tmp, config) -> cleanup or None
    bound: float = 10.0  # seconds
    check: str | None = None  # on success: a function of this module that checks the result (tmp, stdout)

    def __str__(self):
        return self.name


def _jsonl(*rows) -> str:
    return "".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows)


CASES = [
    # configs: the file and the key
    Case("config-unknown-key", "solve Q --config CONFIG", "CONFIG: unknown key 'sampling.temprature'",
         config="sampling: {temprature: 1}"),
    Case("config-bad-yaml", "solve Q --config CONFIG", "not valid YAML (", config="solve: [unclosed"),
    Case("config-duplicate-section", "solve Q --config CONFIG",
         "CONFIG, line 7: duplicate key 'solve' (first on line 5)",
         config="solve: {router: handoff}\nsampling: {seed: 1}\nsolve: {router: alternate}"),
    Case("config-duplicate-key", "solve Q --config CONFIG", "CONFIG, line 7: duplicate key 'router' (first on line 6)",
         config="solve:\n  router: handoff\n  router: alternate"),
    Case("config-zero-concurrency", "solve Q --config CONFIG",
         "CONFIG: 'solve.concurrency': Input should be greater than or equal to 1", config="solve: {concurrency: 0}"),
    Case("config-negative-budget", "solve Q --config CONFIG", "'solve.max_long_tokens': Input should be greater",
         config="solve: {max_long_tokens: -5}"),
    Case("config-zero-timeout", "solve Q --config CONFIG", "'solve.timeout_s': Input should be greater than 0",
         config="solve: {timeout_s: 0}"),
    Case("config-zero-chunk-tokens", "solve Q --config CONFIG",
         "'solve.chunk_tokens'", config="solve: {chunk_tokens: 0}"),
    Case("config-negative-summary-cap", "solve Q --config CONFIG", "'solve.memory.summary_cap'",
         config="solve: {memory: {summary_cap: -1}}"),
    Case("config-nan-temperature", "solve Q --config CONFIG", "'sampling.temperature': Input should be a finite number",
         config="sampling: {temperature: .nan}"),
    Case("config-not-a-mapping", "solve Q --config CONFIG", "CONFIG: a config is a mapping", config="---\n- a list"),
    Case("config-missing-file", "solve Q --config TMP/nope.yaml", "cannot read config TMP/nope.yaml"),
    Case("config-model-path-missing", "solve --config CONFIG --input TMP/in.jsonl --output TMP/out.jsonl",
         "CONFIG: long.path: no model folder at 'TMP/nothing/here'", config="long: {path: TMP/nothing/here}",
         files={"in.jsonl": GOOD}),
    Case("config-hub-name-offline", "solve --config CONFIG --input TMP/in.jsonl --output TMP/out.jsonl",
         "CONFIG: short.path: 'nobody-here/no-model' is not a local folder, and the Hugging Face hub cannot be reached",
         config="short: {path: nobody-here/no-model}", files={"in.jsonl": GOOD}, bound=8),
    # command lines: bounds at parse time
    Case("solve-negative-concurrency", "solve Q --config CONFIG --concurrency -3",
         "argument --concurrency: must be at least 1, got -3"),
    Case("solve-negative-n", "solve --config CONFIG --input TMP/in.jsonl --output TMP/o.jsonl --n -1",
         "argument --n: must be at least 1, got -1"),
    Case("solve-zero-n", "solve --config CONFIG --input TMP/in.jsonl --output TMP/o.jsonl --n 0",
         "argument --n: must be at least 1, got 0"),
    Case("solve-bad-router", "solve Q --config CONFIG --router nope",
         "--router (solve.router): unknown router"),
    Case("eval-zero-limit", "eval --config CONFIG --output TMP/ev --limit 0",
         "argument --limit: must be at least 1, got 0"),
    Case("eval-negative-limit", "eval --config CONFIG --output TMP/ev --limit -1",
         "argument --limit: must be at least 1"),
    Case("eval-negative-n", "eval --config CONFIG --output TMP/ev --n -1", "argument --n: must be at least 1"),
    Case("eval-negative-max-tokens", "eval --config CONFIG --output TMP/ev --max-tokens -5",
         "argument --max-tokens: must be at least 1"),
    Case("eval-negative-temperature", "eval --config CONFIG --output TMP/ev --temperature -1",
         "--temperature (sampling.temperature): Input should be greater than or equal to 0"),
    Case("score-zero-rollouts", "score --config CONFIG --input TMP/t.jsonl --output TMP/s.jsonl --rollouts 0",
         "argument --rollouts: must be at least 1, got 0"),
    Case("coldstart-negative-eval-limit", "coldstart --config CONFIG --eval-limit -1",
         "argument --eval-limit: must be at least 0, got -1"),
    Case("rl-negative-eval-limit", "rl --config CONFIG --eval-limit -1", "argument --eval-limit: must be at least 0"),
    Case("tiny-zero-limit", "tiny --config CONFIG --limit 0", "argument --limit: must be at least 1, got 0"),
    Case("coldstart-seeds-with-traces", "coldstart --config CONFIG --seeds 0 1 --traces TMP/t.jsonl",
         "--seeds trains on each seed's tiny world from its own traces: drop --traces"),
    Case("coldstart-seeds-without-evaluation", "coldstart --config CONFIG --seeds 0 1 --eval-limit 0",
         "--seeds compares the seeds' held-out results: give --eval-limit above 0"),
    Case("rl-seeds-submitted", "rl --config CONFIG --seeds 0 1 --submit http://localhost:8265",
         "--seeds runs here, one seed after the other: drop --submit"),
    Case("rl-negative-seed", "rl --config CONFIG --seeds -1", "argument --seeds: must be at least 0, got -1"),
    Case("demo-negative-limit", "demo --config CONFIG --limit -5", "argument --limit: must be at least 1, got -5"),
    # input lines: FILE, line N: reason
    Case("solve-question-is-a-number", "solve --config CONFIG --input TMP/in.jsonl --output TMP/o.jsonl",
         "TMP/in.jsonl, line 1: problem p: 'question' must be a text, got int 5",
         files={"in.jsonl": _jsonl({"id": "p", "question": 5})}),
    Case("solve-answer-is-a-list", "solve --config CONFIG --input TMP/in.jsonl --output TMP/o.jsonl",
         "TMP/in.jsonl, line 2: problem b: the answer must be a text or a number, got [1, 2]",
         files={"in.jsonl": GOOD + _jsonl({"id": "b", "question": QUESTION, "answer": [1, 2]})}),
    Case("solve-duplicate-id", "solve --config CONFIG --input TMP/in.jsonl --output TMP/o.jsonl",
         "TMP/in.jsonl, line 3: problem a: the id is also on line 1",
         files={"in.jsonl": GOOD + "\n" + GOOD}),
    Case("solve-id-is-an-object", "solve --config CONFIG --input TMP/in.jsonl --output TMP/o.jsonl",
         'line 1: the id must be a non-empty text or an integer, got {"x": 1}',
         files={"in.jsonl": _jsonl({"id": {"x": 1}, "question": QUESTION})}),
    Case("solve-not-utf8", "solve --config CONFIG --input TMP/in.jsonl --output TMP/o.jsonl",
         "TMP/in.jsonl, line 1: not UTF-8", files={"in.jsonl": b'{"question": "caf\xe9"}\n'}),
    Case("solve-nested-too-deep", "solve --config CONFIG --input TMP/in.jsonl --output TMP/o.jsonl",
         "TMP/in.jsonl, line 1: not valid JSON (RecursionError",
         files={"in.jsonl": "[" * 100000 + "]" * 100000 + "\n"}),
    Case("solve-number-too-long", "solve --config CONFIG --input TMP/in.jsonl --output TMP/o.jsonl",
         "TMP/in.jsonl, line 1: not valid JSON", files={"in.jsonl": '{"id": ' + "9" * 20000 + "}\n"}),
    Case("solve-input-missing", "solve --config CONFIG --input TMP/none.jsonl --output TMP/o.jsonl",
         "cannot read TMP/none.jsonl: No such file or directory"),
    Case("solve-input-is-a-folder", "solve --config CONFIG --input TMP --output TMP/o.jsonl",
         "cannot read TMP: Is a directory"),
    Case("solve-empty-question", "solve --config CONFIG BLANK", "problem cli: the question is empty"),
    Case("chunk-duplicate-id", "chunk --config CONFIG --input TMP/t.jsonl --output TMP/c.jsonl",
         "TMP/t.jsonl, line 2: trace t: the id is also on line 1", files={"t.jsonl": TRACE + TRACE}),
    Case("chunk-no-thinking", "chunk --config CONFIG --input TMP/t.jsonl --output TMP/c.jsonl",
         "TMP/t.jsonl, line 1: trace u: no thinking text", files={"t.jsonl": _jsonl({"id": "u", "thinking": 3})}),
    Case("score-null-answer", "score --config CONFIG --input TMP/t.jsonl --output TMP/s.jsonl",
         "TMP/t.jsonl, line 1: trace t: no gold answer",
         files={"t.jsonl": _jsonl({"id": "t", "problem": QUESTION, "thinking": "3+4=7.", "answer": None})}),
    Case("score-answer-is-an-object", "score --config CONFIG --input TMP/t.jsonl --output TMP/s.jsonl",
         'trace t: the answer must be a text or a number, got {"a": 1}',
         files={"t.jsonl": _jsonl({"id": "t", "problem": QUESTION, "thinking": "3+4=7.", "answer": {"a": 1}})}),
    Case("score-no-problem", "score --config CONFIG --input TMP/t.jsonl --output TMP/s.jsonl",
         "TMP/t.jsonl, line 1: trace t: no problem text",
         files={"t.jsonl": _jsonl({"id": "t", "thinking": "3+4=7.", "answer": "7"})}),
    Case("eval-duplicate-benchmark-id", "eval --config CONFIG --data TMP/data --benchmarks math500 --output TMP/ev",
         "TMP/data/math500.jsonl, row 2: the id math500-1 is also on row 1",
         files={"data/math500.jsonl": _jsonl({"id": 1, "problem": "1+1?", "answer": "2"},
                                             {"id": 1, "problem": "2+2?", "answer": "4"})}),
    Case("eval-benchmark-file-missing", "eval --config CONFIG --data TMP --benchmarks gsm8k --output TMP/ev",
         "benchmark 'gsm8k': TMP/gsm8k.jsonl does not exist"),
    Case("eval-no-benchmark", "eval --config CONFIG --benchmarks , --output TMP/ev", "(none named)"),
    Case("eval-no-mode", "eval --config CONFIG --modes , --output TMP/ev", "no mode named in ','"),
    Case("coldstart-traces-duplicate-id", "coldstart --config CONFIG --traces TMP/t.jsonl",
         "TMP/t.jsonl, line 2: trace t: the id is also on line 1", files={"t.jsonl": TRACE + TRACE}),
    Case("coldstart-traces-missing", "coldstart --config CONFIG --traces TMP/none.jsonl",
         "cannot read TMP/none.jsonl: No such file or directory"),
    Case("coldstart-zero-traces", "coldstart --config CONFIG --traces TMP/t.jsonl",
         "'coldstart.traces': Input should be greater than or equal to 1", config="coldstart: {traces: 0}",
         files={"t.jsonl": TRACE}),
    Case("coldstart-steps-rewrite-of-given-traces", "coldstart --config CONFIG --traces TMP/t.jsonl",
         "coldstart.rewrite 'steps' rewrites the tiny world's own traces, not TMP/t.jsonl: use 'short' or 'keep'",
         config="coldstart: {out_dir: TMP/coldstart, rewrite: steps}", files={"t.jsonl": TRACE}),
    Case("rl-problems-duplicate-id", "rl --config CONFIG --eval-limit 0",
         "TMP/train.jsonl, line 2: problem a: the id is also on line 1",
         files={"train.jsonl": GOOD + GOOD}),
    Case("rl-zero-steps", "rl --config CONFIG", "'rl.steps': Input should be greater than or equal to 1",
         config="rl: {out_dir: TMP/rl, steps: 0}"),
    Case("rl-init-missing", "rl --config CONFIG", "rl.init holds no trained agent at TMP/nothing/long",
         config="rl: {out_dir: TMP/rl, init: TMP/nothing}"),
    Case("report-not-a-transcript", "report TMP/t.jsonl --output TMP/rep --config CONFIG",
         "TMP/t.jsonl, line 1: not a transcript", files={"t.jsonl": TRACE}),
    # outputs: one line, before any model loads
    Case("solve-output-is-a-folder", "solve --config CONFIG --input TMP/in.jsonl --output TMP",
         "TMP is a folder; the output of solve is a JSONL file", files={"in.jsonl": GOOD}),
    Case("eval-output-is-a-file", "eval --config CONFIG --data TMP/data --benchmarks math500 --output TMP/in.jsonl",
         "TMP/in.jsonl is a file; the output of eval is a folder",
         files={"in.jsonl": GOOD, "data/math500.jsonl": _jsonl({"problem": "1+1?", "answer": "2"})}),
    Case("rl-out-dir-is-a-file", "rl --config CONFIG --eval-limit 0",
         "TMP/in.jsonl is a file; the output of RL is a folder",
         config="rl: {out_dir: TMP/in.jsonl, init: null}", files={"in.jsonl": GOOD}),
    Case("coldstart-out-dir-is-a-file", "coldstart --config CONFIG --traces TMP/t.jsonl --eval-limit 0",
         "TMP/t.jsonl is a file; the output of cold-start is a folder", config="coldstart: {out_dir: TMP/t.jsonl}",
         files={"t.jsonl": TRACE}),
    Case("solve-output-read-only", "solve --config CONFIG --input TMP/in.jsonl --output TMP/ro/out.jsonl",
         "cannot write in TMP/ro: Read-only file system", files={"in.jsonl": GOOD}, setup="read_only_folder"),
    Case("chunk-output-disk-full", "chunk --config CONFIG --input TMP/t.jsonl --output TMP/full/c.jsonl",
         "No space left on device", files={"t.jsonl": TRACE}, setup="full_disk"),
    Case("solve-second-writer", "solve --config CONFIG --input TMP/in.jsonl --output TMP/out.jsonl",
         "TMP/out.jsonl is being written by another process (pid ", files={"in.jsonl": GOOD}, setup="another_writer"),
    Case("solve-resume-other-router",
         "solve --config CONFIG --input TMP/in.jsonl --output TMP/out.jsonl --router handoff",
         "TMP/out.jsonl holds a solve run with other settings (solve.router: alternate -> handoff)",
         files={"in.jsonl": GOOD}, setup="earlier_solve"),
    Case("solve-resume-unknown-run", "solve --config CONFIG --input TMP/in.jsonl --output TMP/in.jsonl",
         "TMP/in.jsonl holds results of an unknown run (no in.jsonl.run.json beside them)", files={"in.jsonl": GOOD}),
    Case("eval-resume-other-settings",
         "eval --config CONFIG --data TMP/data --benchmarks math500 --modes long --output TMP/ev --max-tokens 5 "
         "--temperature 0.5",
         "(sampling.temperature: 1.0 -> 0.5; solve.max_long_tokens: 4096 -> 5; solve.max_short_tokens: 4096 -> 5)",
         files={"data/math500.jsonl": _jsonl({"problem": "1+1?", "answer": "2"})}, setup="earlier_eval"),
    Case("score-resume-other-rollouts", "score --config CONFIG --input TMP/t.jsonl --output TMP/s.jsonl --rollouts 2",
         "TMP/s.jsonl holds a score run with other settings (scoring.rollouts: 8 -> 2)", files={"t.jsonl": TRACE},
         setup="earlier_score"),
    Case("rl-out-dir-of-another-config", "rl --config CONFIG --eval-limit 0",
         "TMP/rl holds a RL run with other settings (rl.steps: 100 -> 3): pass --overwrite to replace it",
         config="rl: {out_dir: TMP/rl, init: null, steps: 3, problems: TMP/train.jsonl}", files={"train.jsonl": GOOD},
         setup="earlier_rl"),
    # grade: results within the bound, errors at parse time
    Case("grade-huge-prediction", "grade --kind math --prediction HUGE --gold 5", None, check="printed_correct"),
    Case("grade-unknown-kind", "grade --kind poetry --prediction 1 --gold 1",
         "argument --kind: invalid choice: 'poetry'"),
]


def _fill(text: str, tmp: Path, config: Path) -> str:
    return text.replace("CONFIG", str(config)).replace("TMP", str(tmp))


# Words of a command that stand for an argument with spaces in it.
WORDS = {"Q": "a question", "BLANK": "   ", "HUGE": "so " * 100000 + r"\boxed{5}",
         "LONG_QUESTION": "x=3.\n" + "op1: +1.\n" * 30 + "Find x modulo m=10."}


def _argv(command: str, tmp: Path, config: Path) -> list[str]:
    return [WORDS.get(word, word) for word in _fill(command, tmp, config).split()]


def _run_bounded(argv: list[str], bound: float) -> int:
    """``longshort.cli.main(argv)``, stopped by SIGALRM past ``bound`` seconds (pytest-timeout's alarm restored)."""
    from longshort.cli import main

    def too_slow(*_):
        raise TimeoutError(f"still running after {bound} s")

    began = time.monotonic()
    previous = signal.signal(signal.SIGALRM, too_slow)
    outer, _ = signal.setitimer(signal.ITIMER_REAL, bound)
    try:
        return main(argv)
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        if outer:
            signal.setitimer(signal.ITIMER_REAL, max(outer - (time.monotonic() - began), 0.001))


@pytest.fixture
def world(tmp_path, monkeypatch):
    """The test's folder with empty model folders (any load fails) and an offline hub."""
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    for agent in ("long", "short"):
        (tmp_path / "models" / agent).mkdir(parents=True)
    return tmp_path


def _write_case(case: Case, tmp: Path) -> Path:
    """The case's config (a section it gives replaces the base's; one that starts a document is all of it) and
    input files."""
    config = tmp / "config.yaml"
    given = {line.split(":")[0] for line in case.config.splitlines() if line[:1].isalpha()}
    base = [line for line in BASE_CONFIG.splitlines(keepends=True) if line.split(":")[0] not in given]
    text = case.config if case.config.startswith("---") else "".join(base) + case.config
    config.write_text(_fill(text + "\n", tmp, config))
    for name, content in case.files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(_fill(content, tmp, config))
    return config


@pytest.mark.parametrize("case", CASES, ids=str)
def test_hostile_case_ends_in_a_result_or_one_clear_error(case, world, capsys):
    config = _write_case(case, world)
    cleanup = globals()[case.setup](world, config) if case.setup else None
    try:
        capsys.readouterr()
        began = time.monotonic()
        code = _run_bounded(_argv(case.command, world, config), case.bound)
        spent = time.monotonic() - began
        out, err = capsys.readouterr()
    finally:
        if cleanup:
            cleanup()
    assert spent < case.bound
    assert "Traceback" not in err
    if case.expect is None:
        assert code == 0, err
        globals()[case.check](world, out)
        return
    last = err.strip().splitlines()[-1] if err.strip() else ""
    assert code == 2, err
    assert last.startswith(("longshort: error: ", "longshort ")) and ": error: " in last, err
    assert _fill(case.expect, world, config) in last, err
    assert "Loading weights" not in err  # the error came before any model loaded


# setups: each prepares the test folder and may return a cleanup

def read_only_folder(tmp: Path, config: Path):
    folder = tmp / "ro"
    folder.mkdir()
    if os.geteuid() != 0:
        folder.chmod(0o555)  # root writes through permissions: a read-only mount stands in for it
        return lambda: folder.chmod(0o755)
    if subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(folder)]).returncode:
        pytest.skip("cannot mount a read-only folder here")
    return lambda: subprocess.run(["umount", str(folder)])


def full_disk(tmp: Path, config: Path):
    """A 64 KiB file system, filled up."""
    folder = tmp / "full"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(folder)]).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    with open(folder / "filler", "wb", buffering=0) as f:
        try:
            while f.write(b"x" * 4096):
                pass
        except OSError:  # full
            pass
    return lambda: subprocess.run(["umount", str(folder)])


def another_writer(tmp: Path, config: Path):
    """A second process that holds the output's claim until it is stopped."""
    code = (f"from longshort.runs import claim; c = claim({str(tmp / 'out.jsonl')!r}, {{}}, 'solve'); "
            "print('held', flush=True); import time; time.sleep(120)")
    holder = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return lambda: (holder.kill(), holder.wait())


def _earlier(argv: list[str], output: Path, record: str) -> None:
    """An earlier run of ``argv`` (it claims its output, then fails to load the empty models) and one record."""
    assert _run_bounded(argv, 30) == 2
    output.write_text(record)


def earlier_solve(tmp: Path, config: Path):
    _earlier(["solve", "--config", str(config), "--input", str(tmp / "in.jsonl"), "--output", str(tmp / "out.jsonl")],
             tmp / "out.jsonl", '{"problem": {"id": "a"}, "sample": 0}\n')


def earlier_eval(tmp: Path, config: Path):
    _earlier(["eval", "--config", str(config), "--data", str(tmp / "data"), "--benchmarks", "math500", "--modes",
              "long", "--output", str(tmp / "ev")], tmp / "ev" / "summary.json", "{}")


def earlier_score(tmp: Path, config: Path):
    _earlier(["score", "--config", str(config), "--input", str(tmp / "t.jsonl"), "--output", str(tmp / "s.jsonl")],
             tmp / "s.jsonl", '{"id": "t"}\n')


def earlier_rl(tmp: Path, config: Path):
    before = tmp / "before.yaml"
    before.write_text(config.read_text().replace("steps: 3, ", ""))
    _earlier(["rl", "--config", str(before), "--eval-limit", "0"], tmp / "rl" / "metrics.jsonl", '{"step": 1}\n')


def printed_correct(tmp: Path, out: str):
    assert out.strip() == "correct"


# bounds, as a class: every numeric setting of a config, every numeric option of a command

SIGNED = {"rl.reward.correct", "rl.reward.wrong", "rl.reward.invalid"}  # rewards and penalties may be negative


def _numeric_keys(model, prefix: str = "") -> list[tuple[str, type]]:
    import typing

    from pydantic import BaseModel

    found = []
    for name, info in model.model_fields.items():
        kinds = [a for a in typing.get_args(info.annotation) if a is not type(None)] or [info.annotation]
        if typing.get_origin(info.annotation) is tuple:
            if typing.get_args(kinds[0])[:1] == (int,):
                found.append((prefix + name, tuple))
        elif isinstance(kinds[0], type) and issubclass(kinds[0], BaseModel):
            found += _numeric_keys(kinds[0], f"{prefix}{name}.")
        elif kinds[0] in (int, float):
            found.append((prefix + name, float if float in kinds else int))
    return found


def _nested(key: str, value) -> dict:
    *sections, leaf = key.split(".")
    data: dict = {leaf: value}
    for section in reversed(sections):
        data = {section: data}
    return data


def test_every_numeric_config_key_has_bounds(tmp_path):
    import yaml

    from longshort.config import Config, ConfigError, load_config

    keys = _numeric_keys(Config)
    assert len(keys) > 80 and ("solve.concurrency", int) in keys and ("eval.pass_k", tuple) in keys
    for key, kind in keys:
        if key in SIGNED:
            continue
        bad = [[-2]] if kind is tuple else [-2] + ([float("nan"), float("inf")] if kind is float else [])
        for value in bad:
            data = {"long": {"path": "a"}, "short": {"path": "b"}}
            for section, part in _nested(key, value).items():
                data.setdefault(section, {}).update(part) if isinstance(part, dict) else data.update({section: part})
            path = tmp_path / "c.yaml"
            path.write_text(yaml.safe_dump(data))
            with pytest.raises(ConfigError, match=f"'{key}"):
                load_config(path)


def _numeric_options():
    from longshort.cli import build_parser
    from longshort.eval.run_benchmarks import build_parser as eval_parser

    commands = dict(build_parser()._subparsers._group_actions[0].choices)
    commands["eval"] = eval_parser()
    found = []
    for command, parser in commands.items():
        required = [a.option_strings[0] for a in parser._actions if a.required and a.option_strings]
        for action in parser._actions:
            if action.type is not None and action.type is not str and action.option_strings and not action.choices:
                found.append((command, action.option_strings[0], required))
    return found


@pytest.mark.parametrize("command,option,required", _numeric_options(), ids=lambda v: v if isinstance(v, str) else "")
def test_every_numeric_option_refuses_a_negative_value(command, option, required, world, capsys):
    config = _write_case(Case("bounds", "", None), world)
    argv = [command, option, "-2"] + [a for flag in required if flag != option for a in (flag, str(world / "x"))]
    code = _run_bounded(argv + ["--config", str(config)] * (command not in ("compare", "smollm2")), 10)
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err and option in err[-1] and "Traceback" not in "\n".join(err), err


# the tiny world: correct results within bounds

@dataclass
class TinyCase:
    name: str
    command: str  # as Case.command; LONG_QUESTION is a question longer than the context
    check: str  # a function of this module: (tmp, completed process)
    config: dict = field(default_factory=dict)  # merged into configs/tiny.yaml
    files: dict = field(default_factory=dict)
    bound: float = 120.0

    def __str__(self):
        return self.name


BLANK_LINES = "3+4=7." + "\n \n" * 50000 + "So 7."  # 50,000 blank lines in one thought
BIG_TRACE = "\n\n".join(["op1: +4. 3+4=7. Wait, check: 3+4=7."] * 3000)  # 100K characters, far past the context
TINY_CASES = [
    TinyCase("solve-question-longer-than-the-context", "solve --config CONFIG --no-ray LONG_QUESTION",
             "stopped_at_context", config={"long": {"max_context": 48}, "short": {"max_context": 48}}, bound=60),
    TinyCase("solve-null-answer-and-integer-id",
             "solve --config CONFIG --no-ray --input TMP/in.jsonl --output TMP/o.jsonl",
             "null_answer_kept_empty", files={"in.jsonl": _jsonl({"id": 7, "question": QUESTION, "answer": None})},
             bound=60),
    TinyCase("solve-concurrency-one", "solve --config CONFIG --no-ray --concurrency 1 --input TMP/in.jsonl --output "
             "TMP/o.jsonl --n 2", "every_sample_once",
             files={"in.jsonl": _jsonl(*({"id": f"p{k}", "question": QUESTION} for k in range(3)))}, bound=90),
    TinyCase("score-100k-character-trace", "score --config CONFIG --no-ray --rollouts 1 --kind synthetic --input "
             "TMP/t.jsonl --output TMP/s.jsonl", "scored_up_to_the_context",
             files={"t.jsonl": _jsonl({"id": "big", "problem": QUESTION, "thinking": BIG_TRACE, "answer": "7"})},
             bound=150),
    TinyCase("chunk-50k-blank-lines", "chunk --config CONFIG --input TMP/t.jsonl --output TMP/c.jsonl",
             "chunked_whole", files={"t.jsonl": _jsonl({"id": "blank", "thinking": BLANK_LINES})}, bound=60),
]


@pytest.mark.parametrize("case", TINY_CASES, ids=str)
def test_tiny_world_case_ends_in_the_right_result_in_bounded_time(case, tiny_yaml, tmp_path):
    config = tiny_yaml(case.config)
    for name, content in case.files.items():
        (tmp_path / name).write_text(content)
    argv = _argv(case.command, tmp_path, Path(config))
    began = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "longshort.cli", *argv], cwd=REPO, capture_output=True, text=True,
                          timeout=case.bound)
    assert time.monotonic() - began < case.bound
    assert done.returncode == 0 and "Traceback" not in done.stderr, done.stderr[-2000:]
    globals()[case.check](tmp_path, done)


def stopped_at_context(tmp: Path, done):
    assert "stop: context (the question fills" in done.stdout and "of the 48 tokens of long's context" in done.stdout


def null_answer_kept_empty(tmp: Path, done):
    [record] = [json.loads(line) for line in open(tmp / "o.jsonl")]
    assert record["problem"]["id"] == "7" and record["problem"]["answer"] == ""


def every_sample_once(tmp: Path, done):
    keys = [(r["problem"]["id"], r["sample"]) for r in map(json.loads, open(tmp / "o.jsonl"))]
    assert sorted(keys) == [(f"p{k}", s) for k in range(3) for s in range(2)]


def scored_up_to_the_context(tmp: Path, done):
    [record] = [json.loads(line) for line in open(tmp / "s.jsonl")]
    statuses = [c["status"] for c in record["chunks"]]
    assert len(statuses) >= 3000 and statuses[0] == "scored" and statuses[-1] == "past_context"
    assert statuses.count("scored") < 200  # only the prefixes that fit were built and rolled out


def chunked_whole(tmp: Path, done):
    [record] = [json.loads(line) for line in open(tmp / "c.jsonl")]
    assert "".join(c["text"] for c in record["chunks"]) == BLANK_LINES
