"""The benchmark harness end to end on the tiny world: every benchmark file, killed and resumed, all reports."""
from __future__ import annotations

import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from longshort.eval.metrics import context_per_turn, pass_at_k

REPO = Path(__file__).resolve().parents[2]
BENCHMARKS = "math500,aime24,aime25,amc23,gpqa_diamond,gsm8k,synthetic"
LIMIT, N = 2, 4
MODES = ["long", "short", "handoff/fold-restart"]


def test_pass_at_k_is_the_unbiased_estimator():
    assert pass_at_k(4, 1, 1) == pytest.approx(0.25)
    assert pass_at_k(4, 1, 2) == pytest.approx(0.5)  # 1 - (3/4)(2/3)
    assert pass_at_k(4, 0, 4) == 0 and pass_at_k(4, 3, 2) == 1


def _command(tiny_config, data: Path, output: Path) -> list[str]:
    return [sys.executable, str(REPO / "eval" / "run_benchmarks.py"), "--config", tiny_config.source,
            "--benchmarks", BENCHMARKS, "--modes", ",".join(MODES), "--n", str(N), "--limit", str(LIMIT),
            "--data", str(data), "--output", str(output), "--no-ray", "--temperature", "1.0"]


def _lines(output: Path) -> int:
    return sum(len(open(f).readlines()) for f in (output / "transcripts").rglob("*.jsonl"))


@pytest.fixture(scope="module")
def run(tiny_config, shared_file, tmp_path_factory):
    """One run killed once it has written some transcripts, then resumed to the end."""
    data = shared_file("benchmarks/math500.jsonl").parent
    output = tmp_path_factory.mktemp("eval") / "run"
    command = _command(tiny_config, data, output)
    first = subprocess.Popen(command, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and first.poll() is None:
        if (output / "transcripts").exists() and _lines(output) >= 30:
            break
        time.sleep(0.2)
    first.send_signal(signal.SIGKILL)
    first.wait()
    killed_at = _lines(output)
    finished = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert finished.returncode == 0, finished.stderr[-3000:]
    return output, killed_at, finished.stdout


def test_a_killed_run_resumes_with_every_sample_exactly_once(run):
    output, killed_at, _ = run
    total = 7 * len(MODES) * LIMIT * N
    assert 0 < killed_at < total, "the kill landed mid-run"
    for path in (output / "transcripts").rglob("*.jsonl"):
        keys = [(r["problem"]["id"], r["sample"]) for r in map(json.loads, open(path))]
        assert len(keys) == len(set(keys)) == LIMIT * N, path
    assert _lines(output) == total


def test_summary_has_every_benchmark_and_mode_with_metrics_and_provenance(run, tiny_config):
    output, _, stdout = run
    summary = json.loads((output / "summary.json").read_text())
    assert set(summary["results"]) == set(BENCHMARKS.split(","))
    assert summary["config"]["solve"] == json.loads(json.dumps(tiny_config.solve.model_dump()))
    assert {"python", "torch", "transformers", "longshort"} <= set(summary["versions"])
    for modes in summary["results"].values():
        assert list(modes) == MODES
        for row in modes.values():
            assert row["samples"] == LIMIT * N and row["problems"] == LIMIT
            assert 0 <= row["pass@1"] <= row["pass@4"] <= 1
            assert row["tokens"] == pytest.approx(row["long_tokens"] + row["short_tokens"])
            assert row["wall_s"] > 0 and row["tokens_per_s"] > 0
    assert summary["results"]["gsm8k"]["long"]["short_tokens"] == 0
    assert "| synthetic | handoff/fold-restart |" in stdout
    report = (output / "report.md").read_text()
    assert report.count("\n| ") == 1 + 7 * len(MODES)


def test_context_per_turn_restarts_from_the_summary_after_a_fold(run):
    """Under fold-restart the turn after a summary sees the prompt, that summary and itself, nothing more."""
    from longshort.transcript import Transcript

    path = run[0] / "transcripts" / "aime24" / "handoff+fold-restart.jsonl"
    folded = [t for t in (Transcript.from_dict(json.loads(line)) for line in open(path)) if t.folds]
    assert folded, f"no transcript in {path} folded"
    checked = 0
    for t in folded:
        curve = context_per_turn(t)
        assert len(curve) == len(t.turns) and curve[0] == len(t.prompt_ids) + len(t.turns[0].ids)
        for i, turn in enumerate(t.turns[:-1]):
            if turn.kind == "summary":
                assert curve[i + 1] == len(t.prompt_ids) + len(turn.ids) + len(t.turns[i + 1].ids)
                checked += 1
    assert checked


@pytest.fixture(scope="module")
def chromium():
    """Headless chromium (Debian's package; .ci/run installs it), else the test is skipped."""
    found = shutil.which("chromium")
    if not found:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    return found


def _browse(chromium: str, page: Path, tmp_path: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run([chromium, "--headless", "--no-sandbox", "--disable-gpu", "--enable-logging=stderr",
                           "--v=0", f"--user-data-dir={tmp_path / 'profile'}", *extra, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


def _console_errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "CONSOLE" in line and ("Error" in line or "Uncaught" in line)]


def test_report_html_loads_cleanly_and_shows_table_plots_and_a_transcript(run, chromium, tmp_path):
    broken = tmp_path / "broken.html"
    broken.write_text("<html><body><script>undefinedFunction()</script></body></html>")
    assert _console_errors(_browse(chromium, broken, tmp_path, "--dump-dom").stderr), "errors are detected"

    page = run[0] / "report.html"
    shown = _browse(chromium, page, tmp_path, "--dump-dom")
    assert shown.returncode == 0 and not _console_errors(shown.stderr), _console_errors(shown.stderr)
    dom = shown.stdout
    assert 'data-ready="yes"' in dom
    assert dom.count("<tr>") == 1 + 7 * len(MODES)
    assert dom.count("data:image/png;base64,") == 3
    assert dom.count('class="turn long') + dom.count('class="turn short') > 2  # the first transcript, rendered
    shot = tmp_path / "report.png"
    _browse(chromium, page, tmp_path, f"--screenshot={shot}", "--window-size=1200,2400")
    assert shot.stat().st_size > 50_000


def test_compare_shows_both_runs_side_by_side(run, tmp_path):
    from longshort.cli import main

    other = tmp_path / "other"
    shutil.copytree(run[0], other)
    summary = json.loads((other / "summary.json").read_text())
    summary["results"]["synthetic"]["long"]["pass@1"] += 0.5
    (other / "summary.json").write_text(json.dumps(summary))
    from longshort.eval.report import compare

    table = compare(run[0], other)
    row = next(line for line in table.splitlines() if line.startswith("| synthetic | long |"))
    assert "+50.0% ±" in row
    assert main(["compare", str(run[0]), str(other)]) == 0
