"""Ray job submission: the exact `ray job submit` command a run is sent to a cluster with, running a named job to its
end once (an interrupted submit leaves the job running; a rerun follows it), and sending an RL run itself
(``longshort rl --submit``) as a job."""
from __future__ import annotations

import json
import shlex
import subprocess
import sys
from pathlib import Path

# Not uploaded with the working directory: environments, built models, run outputs, version control.
EXCLUDES = (".venv", "artifacts", "runs", ".git", "*.egg-info", "__pycache__")


class JobFailedError(RuntimeError):
    """A submitted job that did not succeed."""


def executable(name: str) -> str:
    """The command ``name`` (ray, deepspeed) beside this interpreter (a virtualenv need not be on PATH), else the
    one on PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else name


def job_address(config) -> str:
    """Where jobs go: ``ray.address`` when it is a dashboard URL, else the dashboard of a head on this machine."""
    address = config.ray.address or ""
    return address if address.startswith(("http://", "https://")) else "http://127.0.0.1:8265"


def submit_command(address: str, working_dir: str | Path, entrypoint: list[str],
                   env_vars: dict[str, str] | None = None, submission_id: str | None = None) -> list[str]:
    runtime_env: dict = {"working_dir": str(working_dir), "excludes": list(EXCLUDES)}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    named = ["--submission-id", submission_id] if submission_id else []
    return [executable("ray"), "job", "submit", "--address", address, *named, "--runtime-env-json",
            json.dumps(runtime_env), "--", *entrypoint]


def submit(command: list[str], dry_run: bool, log=print) -> None:
    """Print the command; unless ``dry_run``, run it (it streams the job's logs and returns when the job ends)."""
    log(shlex.join(command))
    if not dry_run:
        done = subprocess.run(command)
        if done.returncode:
            raise JobFailedError(f"the job did not succeed: `ray job submit` exited with {done.returncode} (its log "
                                 "is above)")


def run_job(command: list[str], log=print) -> None:
    """Run the job of ``command`` (``submit_command`` with a submission id ``<name>-<attempt>``) to its end, once.

    A cluster keeps a job running when the ``ray job submit`` that follows it is interrupted, so the cluster's jobs
    named ``<name>-<k>`` are looked at first: the latest one still pending or running is followed to its end (its
    log streamed) instead of being started twice; one that succeeded leaves nothing to do; after one that failed or
    was stopped (or none), attempt k + 1 is submitted. Raises JobFailedError when the job does not succeed."""
    from ray.job_submission import JobStatus, JobSubmissionClient

    address = command[command.index("--address") + 1]
    at = command.index("--submission-id") + 1
    name = command[at].rsplit("-", 1)[0]
    client = JobSubmissionClient(address)
    attempts = sorted((int(job.submission_id.rsplit("-", 1)[1]), job) for job in client.list_jobs()
                      if (job.submission_id or "").rsplit("-", 1)[0] == name
                      and job.submission_id.rsplit("-", 1)[1].isdigit())
    latest = attempts[-1][1] if attempts else None
    if latest is not None and latest.status == JobStatus.SUCCEEDED:
        log(f"{latest.submission_id} succeeded before")
        return
    if latest is not None and latest.status in (JobStatus.PENDING, JobStatus.RUNNING):
        log(f"{latest.submission_id} is still running on the cluster: following it rather than starting it again")
        subprocess.run([executable("ray"), "job", "logs", "--follow", "--address", address, latest.submission_id])
        status = client.get_job_status(latest.submission_id)
        if status != JobStatus.SUCCEEDED:
            raise JobFailedError(f"the job {latest.submission_id} did not succeed: {status.value}")
        return
    submit(command[:at] + [f"{name}-{len(attempts) + 1}"] + command[at + 1:], dry_run=False, log=log)


def submit_self(config, address: str, overwrite: bool, eval_limit: int, dry_run: bool, log=print) -> list[str]:
    """Send this very run to the Ray cluster at ``address`` as a job. Its working directory holds only the config,
    every path in it resolved here, so the job finds the models and writes ``rl.out_dir`` where this machine would
    (storage the head node shares)."""
    import shutil
    import tempfile

    import yaml

    folder = Path(tempfile.mkdtemp(prefix="longshort-job-"))
    try:
        (folder / "config.yaml").write_text(yaml.safe_dump(config.model_dump(mode="json", exclude={"source"})))
        entrypoint = ["longshort", "rl", "--config", "config.yaml", "--eval-limit", str(eval_limit)]
        command = submit_command(address, folder, entrypoint + (["--overwrite"] if overwrite else []))
        submit(command, dry_run, log)
    finally:
        shutil.rmtree(folder)
    return command
