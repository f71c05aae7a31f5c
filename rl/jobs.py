"""Ray job submission: the exact `ray job submit` command a run is sent to a cluster with, and sending an RL run
itself (``longshort rl --submit``) as a job."""
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


def ray_executable() -> str:
    """The ``ray`` beside this interpreter (a virtualenv need not be on PATH), else the one on PATH."""
    beside = Path(sys.executable).parent / "ray"
    return str(beside) if beside.exists() else "ray"


def job_address(config) -> str:
    """Where jobs go: ``ray.address`` when it is a dashboard URL, else the dashboard of a head on this machine."""
    address = config.ray.address or ""
    return address if address.startswith(("http://", "https://")) else "http://127.0.0.1:8265"


def submit_command(address: str, working_dir: str | Path, entrypoint: list[str],
                   env_vars: dict[str, str] | None = None) -> list[str]:
    runtime_env: dict = {"working_dir": str(working_dir), "excludes": list(EXCLUDES)}
    if env_vars:
        runtime_env["env_vars"] = env_vars
    return [ray_executable(), "job", "submit", "--address", address, "--runtime-env-json",
            json.dumps(runtime_env), "--", *entrypoint]


def submit(command: list[str], dry_run: bool, log=print) -> None:
    """Print the command; unless ``dry_run``, run it (it streams the job's logs and returns when the job ends)."""
    log(shlex.join(command))
    if not dry_run:
        done = subprocess.run(command)
        if done.returncode:
            raise JobFailedError(f"the job did not succeed: `ray job submit` exited with {done.returncode} (its log "
                                 "is above)")


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
