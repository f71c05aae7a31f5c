"""Putting a run together: host the agents, check they share a tokenizer, solve files resumably."""
from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

from longshort.config import Config, ModelConfig, SolveConfig
from longshort.jsonl import Appender, completed_keys
from longshort.orchestrator import Orchestrator
from longshort.problem import Problem
from longshort.protocol import Protocol, prompt_ids
from longshort.transcript import Transcript


def load_shared_tokenizer(config: Config):
    """The tokenizer both agents speak; the transcript's ids mean the same thing to each, and its prompt (the
    question in the chat template) is the one each was trained on."""
    from longshort.agents.hf_backend import load_tokenizer

    long_tok = load_tokenizer(config.long.path, config.long.trust_remote_code, "long")
    check_chat_template(long_tok, config.long.path)
    if config.short.path != config.long.path:
        short_tok = load_tokenizer(config.short.path, config.short.trust_remote_code, "short")
        if short_tok.get_vocab() != long_tok.get_vocab():
            raise ValueError(f"{config.source}: the long and short models must share one tokenizer "
                             f"({config.long.path} and {config.short.path} differ)")
        if short_tok.chat_template != long_tok.chat_template:
            check_chat_template(short_tok, config.short.path)
            raise ValueError(f"{config.source}: the long and short models must share one chat template, since "
                             f"both read the prompt it renders ({config.long.path} and {config.short.path} differ)")
    protocol = Protocol.from_tokenizer(config.protocol, long_tok, config.long.path)
    return long_tok, protocol


def check_chat_template(tokenizer, path: str) -> None:
    """Refuse a chat template that renders a question bare, with no user or assistant turn around it: a template
    made for training data, such as the one OpenRLHF's SFT saves with the model it trained."""
    probe = "What is 2+2?"
    if prompt_ids(tokenizer, probe) == tokenizer.encode(probe, add_special_tokens=False):
        raise ValueError(f"the chat template of {path} renders a question bare: it is a training template, not the "
                         "model's own (OpenRLHF's SFT saves the one it trained with; longshort's cold-start puts the "
                         "starting model's tokenizer back after each job, or copy its tokenizer files over)")


@dataclass(frozen=True)
class Hosted:
    """The agents of a run (in Ray actors or in this process) and the tokenizer and protocol they share; free-form
    baselines are hosted beside them when first asked for, each with its own tokenizer."""

    agents: dict  # agent name -> longshort.agents.actor.Agent
    tokenizer: object
    protocol: Protocol
    ray: object = None  # the RayConfig the agents were started under; None: in this process
    baselines: dict = field(default_factory=dict)  # name -> (Agent, tokenizer)

    def backend(self, agent: str):
        """The Backend of an agent hosted in this process (a trainer updates its model in place)."""
        return self.agents[agent].actor.backend

    def baseline(self, name: str, model: ModelConfig):
        """The agent and tokenizer of baseline ``name``, started the first time it is asked for."""
        if name not in self.baselines:
            from longshort.agents.actor import start_agents
            from longshort.agents.hf_backend import load_tokenizer

            tokenizer = load_tokenizer(model.path, model.trust_remote_code, f"baselines.{name}")
            self.baselines[name] = (start_agents({name: model}, self.ray)[name], tokenizer)
        return self.baselines[name]


def start(config: Config, use_ray: bool = True) -> Hosted:
    """Hosted agents plus the shared tokenizer and protocol, ready for any number of orchestrators."""
    from longshort.agents.actor import start_agents

    tokenizer, protocol = load_shared_tokenizer(config)
    ray = config.ray if use_ray else None
    agents = start_agents({"long": config.long, "short": config.short}, ray)
    return Hosted(agents, tokenizer, protocol, ray)


def orchestrator(config: Config, hosted: Hosted, solve: SolveConfig | None = None) -> Orchestrator:
    return Orchestrator(hosted.agents, hosted.tokenizer, hosted.protocol, solve or config.solve, config.sampling,
                        config.scoring)


def solver(config: Config, hosted: Hosted, spec):
    """What solves one mode: an Orchestrator for a solve config, a FreeForm for a free-form model
    (eval/modes.py's FreeMode)."""
    from longshort.chat import ChatFormat
    from longshort.freeform import FreeForm

    if isinstance(spec, SolveConfig):
        text = [agent for agent in ("long", "short") if config.model(agent).format == "text"]
        if text:
            print(f"note: the {' and '.join(text)} model has format: text and has not learnt the protocol tags; "
                  "until cold-start SFT its turns end without them (a free-form mode, free:NAME, runs a model in "
                  "its own format)", file=sys.stderr)
        return orchestrator(config, hosted, spec)
    name = spec.model
    if name in config.baselines:
        model = config.baselines[name]
        agent, tokenizer = hosted.baseline(name, model)
        role, budget = "long", config.solve.max_long_tokens
    else:
        model, agent, tokenizer, role = config.model(name), hosted.agents[name], hosted.tokenizer, name
        budget = config.solve.max_long_tokens if name == "long" else config.solve.max_short_tokens
    chat = ChatFormat.of(model, tokenizer, name)
    return FreeForm(name, agent, tokenizer, chat, budget, config.sampling, config.solve.concurrency, role)


def solve_settings(config: Config, routers) -> dict:
    """What a solve's transcripts depend on, for its output's run record (longshort/runs.py): the models (and the
    free-form baselines among ``routers``), sampling, the solve section but for how many transcripts run at once,
    the protocol, and the scoring section when one of ``routers`` is an ``mc`` router, which looks ahead with it."""
    from longshort.runs import model_settings

    baselines = sorted({r.removeprefix("free:") for r in routers if r.startswith("free:")} & set(config.baselines))
    settings = {"models": model_settings(config, ("long", "short", *baselines)),
                "sampling": config.sampling.model_dump(), "solve": config.solve.model_dump(exclude={"concurrency"}),
                "protocol": config.protocol.model_dump()}
    if any(router.startswith("mc") for router in routers):
        settings["scoring"] = config.scoring.model_dump()
    return settings


def transcript_key(record: dict) -> tuple[str, int]:
    return record["problem"]["id"], record.get("sample", 0)


def solve_file(orch: Orchestrator, problems: list[Problem], output: str | Path, samples: int = 1,
               on_done=None, desc: str | None = None) -> list[Transcript]:
    """Solve ``problems`` × ``samples`` into ``output``, skipping what it already holds; appends as each finishes."""
    from tqdm import tqdm

    done = completed_keys(output, transcript_key)
    todo = [(p, s) for p in problems for s in range(samples) if (p.id, s) not in done]
    writer = Appender(output)
    bar = tqdm(total=len(todo), desc=desc or Path(output).stem, unit="transcript", file=sys.stderr, mininterval=1.0)

    def finished(transcript: Transcript) -> None:
        writer.write(transcript.to_dict())
        bar.update()
        if on_done:
            on_done(transcript)

    try:
        return orch.solve(todo, on_done=finished)
    finally:
        bar.close()
        writer.close()
