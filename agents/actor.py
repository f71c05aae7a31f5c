"""Hosting one model per agent: in-process, or as a Ray actor with its own resources.

The orchestrator talks to ``Agent`` handles only. ``submit`` starts a batched generate call and returns at once,
so the long and the short agent decode at the same time; ``result`` waits for it. A Ray actor that dies surfaces
as ``AgentDiedError`` naming the agent; with ``max_restarts`` > 0 in its config Ray restarts it and retries.
"""
from __future__ import annotations

import os
from concurrent.futures import Future
from typing import Sequence

from longshort.agents.backend import GenerationRequest, GenerationResult
from longshort.config import ModelConfig, RayConfig


class AgentDiedError(RuntimeError):
    """The process hosting an agent's model is gone."""


def make_backend(config: ModelConfig, name: str):
    if config.backend == "vllm":
        from longshort.agents.vllm_backend import VLLMBackend

        return VLLMBackend(config, name)
    from longshort.agents.hf_backend import HFBackend

    return HFBackend(config, name)


class AgentActor:
    """Hosts one Backend. The same class runs in-process and, wrapped by ``ray.remote``, as an actor."""

    def __init__(self, config: ModelConfig | None, name: str, backend=None):
        self.backend = backend or make_backend(config, name)

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return self.backend.generate(requests)

    def info(self) -> dict:
        return {
            "name": self.backend.name,
            "eos_token_id": self.backend.eos_token_id,
            "max_context": self.backend.max_context,
            "pid": os.getpid(),
        }


class Agent:
    """A handle on a hosted model; ``generate`` is ``result(submit(...))``."""

    name: str

    def submit(self, requests: Sequence[GenerationRequest]):
        raise NotImplementedError

    def result(self, pending) -> list[GenerationResult]:
        raise NotImplementedError

    def info(self) -> dict:
        raise NotImplementedError

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        return self.result(self.submit(requests))


class LocalAgent(Agent):
    """In-process hosting, for tests and debugging: the call runs inside ``submit``. ``backend``: one already
    built (over a model held in memory) instead of one loaded from ``config``."""

    def __init__(self, config: ModelConfig | None, name: str, backend=None):
        self.name = name
        self.actor = AgentActor(config, name, backend)

    def submit(self, requests):
        future: Future = Future()
        try:
            future.set_result(self.actor.generate(list(requests)))
        except Exception as e:  # delivered by result(), as a remote call would
            future.set_exception(e)
        return future

    def result(self, pending):
        return pending.result()

    def info(self):
        return self.actor.info()


class RayAgent(Agent):
    """An ``AgentActor`` in its own Ray worker, placed with the agent's ``num_cpus`` and ``num_gpus``."""

    def __init__(self, config: ModelConfig, name: str):
        import ray

        self.name = name
        remote = ray.remote(
            num_cpus=config.num_cpus,
            num_gpus=config.num_gpus,
            max_restarts=config.max_restarts,
            max_task_retries=config.max_restarts,
        )(AgentActor)
        self.handle = remote.options(name=None).remote(config, name)
        self.info()  # surface load errors (missing path, bad tokenizer) here, not at the first generate

    def submit(self, requests):
        return self.handle.generate.remote(list(requests))

    def result(self, pending):
        import ray
        from ray.exceptions import RayActorError, RayTaskError

        try:
            return ray.get(pending)
        except RayActorError as e:
            raise AgentDiedError(f"agent '{self.name}' died: {e}") from None
        except RayTaskError as e:
            raise e.as_instanceof_cause() from None

    def info(self):
        return self.result(self.handle.info.remote())

    def close(self) -> None:
        """End the actor now, freeing its GPUs for what runs next (Ray would end it only with this driver)."""
        import ray

        ray.kill(self.handle)


def init_ray(config: RayConfig) -> None:
    """Connect to the cluster at ``config.address``, or start a local Ray that listens on loopback only.

    Ray's node address is what its servers bind to: its GCS, raylet, workers and agents listen on all interfaces
    unless the node address is 127.0.0.1. ``ray.init(_node_ip_address="127.0.0.1")`` alone is not enough, as Ray
    replaces a loopback address with the host's reachable one while clusters are enabled; its switch
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` turns that off (a single-machine Ray, Ray's default on macOS and
    Windows). The switch is read when ray is imported, so it is set both in the environment (for the processes Ray
    starts) and on the module already imported.
    """
    if config.address:
        import ray

        if not ray.is_initialized():
            ray.init(address=config.address, log_to_driver=False)
        return
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    import ray
    from ray._private import ray_constants

    if ray.is_initialized():
        return
    ray_constants.ENABLE_RAY_CLUSTER = False
    ray.init(num_cpus=config.num_cpus, _node_ip_address="127.0.0.1", include_dashboard=False, log_to_driver=False)


def start_agents(models: dict[str, ModelConfig], ray_config: RayConfig | None) -> dict[str, Agent]:
    """One handle per agent; ``ray_config`` None hosts both in this process."""
    if ray_config is None:
        return {name: LocalAgent(cfg, name) for name, cfg in models.items()}
    init_ray(ray_config)
    return {name: RayAgent(cfg, name) for name, cfg in models.items()}
