"""Putting a run together: host the agents, check they share a tokenizer, solve files resumably."""
from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

from longshort.config import Config, SolveConfig
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
    """The agents of a run (in Ray actors or in this process) and the tokenizer and protocol they share."""

    agents: dict  # agent name -> longshort.agents.actor.Agent
    tokenizer: object
    protocol: Protocol

    def backend(self, agent: str):
        """The Backend of an agent hosted in this process (a trainer updates its model in place)."""
        return self.agents[agent].actor.backend


def start(config: Config, use_ray: bool = True) -> Hosted:
    """Hosted agents plus the shared tokenizer and protocol, ready for any number of orchestrators."""
    from longshort.agents.actor import start_agents

    tokenizer, protocol = load_shared_tokenizer(config)
    agents = start_agents({"long": config.long, "short": config.short}, config.ray if use_ray else None)
    return Hosted(agents, tokenizer, protocol)


def orchestrator(config: Config, hosted: Hosted, solve: SolveConfig | None = None) -> Orchestrator:
    return Orchestrator(hosted.agents, hosted.tokenizer, hosted.protocol, solve or config.solve, config.sampling,
                        config.scoring)


def solve_settings(config: Config, routers) -> dict:
    """What a solve's transcripts depend on, for its output's run record (longshort/runs.py): the models, sampling,
    the solve section but for how many transcripts run at once, the protocol, and the scoring section when one of
    ``routers`` is the ``mc`` router, which looks ahead with it."""
    from longshort.runs import model_settings

    settings = {"models": model_settings(config), "sampling": config.sampling.model_dump(),
                "solve": config.solve.model_dump(exclude={"concurrency"}), "protocol": config.protocol.model_dump()}
    if "mc" in routers:
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
