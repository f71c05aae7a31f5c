"""Ray jobs on a real head node on loopback: a job is run to its end once, whatever happened to the submit that
started it."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest


def wait_for(client, submission_id: str, statuses, timeout_s: float = 120):
    deadline = time.time() + timeout_s
    while time.time() < deadline:
        try:
            if client.get_job_status(submission_id) in statuses:
                return
        except RuntimeError:  # not known to the cluster yet
            pass
        time.sleep(0.2)
    raise AssertionError(f"{submission_id} never reached {statuses}")


def test_a_rerun_follows_the_job_an_interrupted_submit_left_running(tmp_path, ray_head):
    from ray.job_submission import JobStatus, JobSubmissionClient

    from longshort.rl.jobs import run_job, submit_command

    name = f"test-{tmp_path.name}"
    (tmp_path / "work").mkdir()
    command = submit_command(ray_head, tmp_path / "work", [sys.executable, "-c", "import time; time.sleep(8)"],
                             submission_id=f"{name}-1")
    client = JobSubmissionClient(ray_head)
    first = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for(client, f"{name}-1", {JobStatus.RUNNING})
    first.send_signal(signal.SIGINT)  # Ctrl-C on the submit, or its terminal gone
    first.wait(timeout=60)
    assert client.get_job_status(f"{name}-1") == JobStatus.RUNNING  # the cluster kept the job going
    said = []
    run_job(command, said.append)  # the rerun
    assert "still running on the cluster" in said[0]
    assert client.get_job_status(f"{name}-1") == JobStatus.SUCCEEDED
    run_job(command, said.append)
    assert said[-1] == f"{name}-1 succeeded before"
    assert [j.submission_id for j in client.list_jobs() if j.submission_id.startswith(name)] == [f"{name}-1"]


def test_a_failed_job_is_submitted_again_as_the_next_attempt(tmp_path, ray_head):
    from ray.job_submission import JobSubmissionClient

    from longshort.rl.jobs import JobFailedError, run_job, submit_command

    name = f"test-{tmp_path.name}"
    (tmp_path / "work").mkdir()
    command = submit_command(ray_head, tmp_path / "work", [sys.executable, "-c", "raise SystemExit(3)"],
                             submission_id=f"{name}-1")
    for _ in range(2):
        with pytest.raises(JobFailedError):
            run_job(command, lambda *_: None)
    jobs = sorted(j.submission_id for j in JobSubmissionClient(ray_head).list_jobs() if j.submission_id.startswith(name))
    assert jobs == [f"{name}-1", f"{name}-2"]
