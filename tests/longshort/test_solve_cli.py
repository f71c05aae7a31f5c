"""`longshort solve` on files: resumable output, clear errors for bad lines, --skip-bad."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def solve(*args, **kw):
    cmd = [sys.executable, "-m", "longshort.cli", "solve", "--config", str(REPO / "configs/tiny.yaml"), "--no-ray", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, **kw)


def write_problems(path, tiny_config, count):
    rows = [json.loads(line) for line in open(Path(tiny_config.tiny.out_dir) / "heldout.jsonl")][:count]
    path.write_text("".join(json.dumps({"id": r["id"], "question": r["question"], "answer": r["answer"]}) + "\n" for r in rows))
    return [r["id"] for r in rows]


def test_one_question_prints_the_transcript(tiny_config):
    result = solve("x=3.\nop1: +4.\nop2: *2.\nop3: +5.\nFind x modulo m=10.")
    assert result.returncode == 0, result.stderr
    assert "[long]" in result.stdout and "[short]" in result.stdout and "stop:" in result.stdout


def test_killed_run_resumes_with_each_id_exactly_once(tiny_config, tmp_path):
    ids = write_problems(tmp_path / "in.jsonl", tiny_config, 40)
    out = tmp_path / "out.jsonl"
    cmd = [sys.executable, "-m", "longshort.cli", "solve", "--config", str(REPO / "configs/tiny.yaml"), "--no-ray",
           "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--concurrency", "2"]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and (not out.exists() or len(out.read_text().splitlines()) < 3):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = len(out.read_text().splitlines())
    assert 3 <= partial < len(ids), "the kill should land halfway"
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    got = [json.loads(line)["problem"]["id"] for line in out.read_text().splitlines()]
    assert sorted(got) == sorted(ids)


def test_bad_lines_are_named_and_skip_bad_goes_on(tiny_config, tmp_path):
    good = write_problems(tmp_path / "good.jsonl", tiny_config, 2)
    bad = tmp_path / "in.jsonl"
    bad.write_bytes((tmp_path / "good.jsonl").read_bytes().splitlines(keepends=True)[0]
                    + b'{"id": "empty", "question": "  "}\n'
                    + b'{"id": "latin1", "question": "caf\xe9"}\n'
                    + b'{"id": "cut", "question": \n'
                    + (tmp_path / "good.jsonl").read_bytes().splitlines(keepends=True)[1])
    result = solve("--input", str(bad), "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 2
    assert f"{bad}, line 2: problem empty: the question is empty" in result.stderr
    result = solve("--input", str(bad), "--output", str(tmp_path / "out.jsonl"), "--skip-bad")
    assert result.returncode == 0, result.stderr
    for line, what in ((2, "the question is empty"), (3, "not UTF-8"), (4, "not valid JSON")):
        assert f"line {line}: " in result.stdout + result.stderr and what in result.stdout + result.stderr
    got = [json.loads(line)["problem"]["id"] for line in open(tmp_path / "out.jsonl")]
    assert sorted(got) == sorted(good)


def test_a_null_answer_reads_as_no_answer(tmp_path):
    from longshort.jsonl import read_problems

    path = tmp_path / "problems.jsonl"
    path.write_text('{"question": "2+2?", "answer": null}\n{"question": "3+3?", "answer": 6}\n')
    assert [p.answer for p in read_problems(path)] == ["", "6"]


def _start(tmp_path, out, *extra):
    cmd = [sys.executable, "-m", "longshort.cli", "solve", "--config", str(REPO / "configs/tiny.yaml"), "--no-ray",
           "--input", str(tmp_path / "in.jsonl"), "--output", str(out), "--concurrency", "2", *extra]
    return cmd, subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_lines(out, count, proc, seconds=120):
    deadline = time.time() + seconds
    while time.time() < deadline and proc.poll() is None:
        if out.exists() and len(out.read_bytes().splitlines()) >= count:
            return
        time.sleep(0.1)
    raise AssertionError(f"{out} did not reach {count} lines")


def _ids(out):
    data = out.read_bytes()
    assert data.endswith(b"\n"), "no partial record"
    return [json.loads(line)["problem"]["id"] for line in data.splitlines()]


def test_a_second_writer_is_refused_at_once_and_the_first_finishes_alone(tiny_config, tmp_path):
    ids = write_problems(tmp_path / "in.jsonl", tiny_config, 30)
    out = tmp_path / "out.jsonl"
    _, first = _start(tmp_path, out)
    _wait_for_lines(out, 1, first)
    began = time.time()
    second = subprocess.run(_start(tmp_path, out)[0], cwd=REPO, capture_output=True, text=True, timeout=60)
    assert second.returncode == 2 and time.time() - began < 30
    assert second.stderr.strip().splitlines()[-1] == (f"longshort: error: {out} is being written by another "
                                                      f"process (pid {first.pid})")
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert sorted(_ids(out)) == sorted(ids)


def test_ctrl_c_leaves_whole_records_and_a_rerun_finishes_each_id_once(tiny_config, tmp_path):
    ids = write_problems(tmp_path / "in.jsonl", tiny_config, 30)
    out = tmp_path / "out.jsonl"
    cmd, proc = _start(tmp_path, out)
    _wait_for_lines(out, 3, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("longshort: interrupted; every record written is whole")
    assert 3 <= len(_ids(out)) < len(ids)
    assert subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=300).returncode == 0
    assert sorted(_ids(out)) == sorted(ids)


def test_a_full_disk_is_one_line_with_only_whole_records_and_a_rerun_with_room_finishes(tiny_config, tmp_path):
    ids = write_problems(tmp_path / "in.jsonl", tiny_config, 30)
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(disk)]).returncode:
        pytest.skip("mounting a small tmpfs needs root")
    try:
        out = disk / "out.jsonl"
        cmd, proc = _start(tmp_path, out)
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2 and "Traceback" not in err, err
        assert err.strip().splitlines()[-1] == f"longshort: error: cannot write {out}: No space left on device"
        written = _ids(out)
        assert 0 < len(written) < len(ids) and len(set(written)) == len(written)
        subprocess.run(["mount", "-o", "remount,size=16m", str(disk)], check=True)
        assert subprocess.run(cmd, cwd=REPO, capture_output=True, timeout=300).returncode == 0
        assert sorted(_ids(out)) == sorted(ids)
    finally:
        subprocess.run(["umount", str(disk)])
