"""The Ray actor hosting a model, for real: same answers as in-process, clear errors when it dies."""
import os

import pytest

from longshort.agents.actor import AgentDiedError, LocalAgent, RayAgent, start_agents
from longshort.agents.backend import GenerationRequest
from longshort.agents.hf_backend import ModelLoadError


def requests(tiny_config):
    from longshort.agents.hf_backend import load_tokenizer
    from longshort.protocol import prompt_ids

    tokenizer = load_tokenizer(tiny_config.long.path)
    prompt = prompt_ids(tokenizer, "x=3.\nop1: +4.\nop2: *2.\nop3: -1.\nFind x modulo m=10.")
    return [GenerationRequest(prompt, 24, temperature=0.0), GenerationRequest(prompt, 24, temperature=1.0, seed=4, n=2)]


def test_ray_actor_returns_what_the_in_process_host_returns(tiny_config, local_ray):
    agents = start_agents({"long": tiny_config.long, "short": tiny_config.short}, tiny_config.ray)
    local = LocalAgent(tiny_config.long, "long")
    batch = requests(tiny_config)
    pending = {name: agent.submit(batch) for name, agent in agents.items()}  # both decode at once
    remote = agents["long"].result(pending["long"])
    agents["short"].result(pending["short"])
    expected = local.generate(batch)
    assert [[c.token_ids for c in r.completions] for r in remote] == [[c.token_ids for c in r.completions] for r in expected]
    info = agents["long"].info()
    assert info["name"] == "long" and info["pid"] != os.getpid()


def test_dead_actor_error_names_the_agent(tiny_config, local_ray):
    agent = RayAgent(tiny_config.short, "short")
    local_ray.kill(agent.handle)
    with pytest.raises(AgentDiedError, match="agent 'short' died"):
        agent.generate(requests(tiny_config))


def test_actor_with_restarts_comes_back(tiny_config, local_ray):
    agent = RayAgent(tiny_config.short.model_copy(update={"max_restarts": 1}), "short")
    first_pid = agent.info()["pid"]
    local_ray.kill(agent.handle, no_restart=False)
    assert agent.generate(requests(tiny_config))[0].completions[0].token_ids
    assert agent.info()["pid"] != first_pid


def test_missing_model_path_is_named(tiny_config, tmp_path):
    config = tiny_config.long.model_copy(update={"path": str(tmp_path / "no-such-model")})
    with pytest.raises(ModelLoadError, match="model path of long: no model folder at .*no-such-model"):
        LocalAgent(config, "long")


def test_a_local_ray_listens_on_loopback_only(tiny_config, local_ray):
    """Every socket the local Ray listens on (the driver, GCS, raylet, agents and the actors hosting the models)
    is bound to loopback, as read from the sockets the processes actually hold."""
    import ipaddress

    import psutil

    agents = start_agents({"long": tiny_config.long, "short": tiny_config.short}, tiny_config.ray)
    assert agents["long"].generate(requests(tiny_config))[0].completions[0].token_ids  # the actors are up and serving
    me = psutil.Process()
    processes = [me] + me.children(recursive=True)
    listening = []
    for process in processes:
        try:
            listening += [(process.name(), c.laddr) for c in process.net_connections("inet")
                          if c.status == psutil.CONN_LISTEN]
        except psutil.NoSuchProcess:
            continue
    names = {name for name, _ in listening}
    assert len(listening) >= 4 and "gcs_server" in names and "raylet" in names, listening
    exposed = [(name, addr) for name, addr in listening if not _loopback(ipaddress.ip_address(addr.ip))]
    assert not exposed, exposed


def _loopback(address) -> bool:
    mapped = getattr(address, "ipv4_mapped", None)
    return (mapped or address).is_loopback
