"""Routers decide who writes the next chunk. Each is one registered class; adding a router touches one file.

- ``long`` / ``short``: one agent writes everything (the single-model baselines).
- ``alternate``: strict turn-taking, the long agent first.
- ``handoff`` (Long⊗Short): the long agent writes a thought, the short agent carries on until it emits the
  hand-back tag, then the long agent writes the next thought.
- ``mc``: Monte Carlo lookahead. For each transcript, each agent samples K candidate next chunks; one ``answer``
  rollout (longshort/importance.py) from each candidate estimates the chance of a correct answer after it, and K
  rollouts from the current state the chance now. The agent whose chunk raises the chance more per token writes.
  The first ``scoring.router_turns`` think turns of a transcript are decided this way; later turns, and turns where
  neither candidate raises the chance, go to ``scoring.router_fallback``.

The orchestrator asks for all its live transcripts at once (``choose``), so a router that needs the models batches
its lookahead.
"""
from __future__ import annotations

import copy

from longshort.transcript import Transcript

ROUTERS: dict[str, type["Router"]] = {}


def router(name: str):
    def register(cls):
        ROUTERS[name] = cls
        cls.name = name
        return cls

    return register


class Router:
    name: str

    def __init__(self, protocol, **context):
        self.protocol = protocol

    def choose(self, transcripts: list[Transcript]) -> list[str]:
        """The next writer of each transcript."""
        return [self.next_agent(t) for t in transcripts]

    def next_agent(self, transcript: Transcript) -> str:
        raise NotImplementedError


def _last_thinker(transcript: Transcript) -> str | None:
    return next((t.agent for t in reversed(transcript.turns) if t.kind == "think"), None)


@router("long")
class LongOnly(Router):
    def next_agent(self, transcript):
        return "long"


@router("short")
class ShortOnly(Router):
    def next_agent(self, transcript):
        return "short"


@router("alternate")
class Alternate(Router):
    def next_agent(self, transcript):
        return "short" if _last_thinker(transcript) == "long" else "long"


@router("handoff")
class Handoff(Router):
    def next_agent(self, transcript):
        last = next((t for t in reversed(transcript.turns) if t.kind == "think"), None)
        if last is None or last.agent == "short" and last.token_ids[-1:] == [self.protocol.ids["handback"]]:
            return "long"
        return "short"


@router("mc")
class MonteCarlo(Router):
    def __init__(self, protocol, *, agents, tokenizer, solve, sampling, scoring, max_context, **context):
        from longshort.rollouts import Rollouts

        super().__init__(protocol)
        self.fallback = make_router(scoring.router_fallback, protocol)
        self.agents, self.solve, self.scoring = agents, solve, scoring
        self.max_context = max_context
        self.rollouts = Rollouts(agents, tokenizer, protocol, scoring, sampling.seed, max_context[scoring.agent])
        self.decided: dict[tuple[str, int], int] = {}  # (problem id, sample) -> turns decided by rollouts
        self.stats = {"decisions": 0, "long": 0, "short": 0, "fallback": 0}

    def choose(self, transcripts):
        choice = self.fallback.choose(transcripts)
        scored = [i for i, t in enumerate(transcripts)
                  if self.decided.get((t.problem.id, t.sample), 0) < self.scoring.router_turns
                  and self.rollouts.fits(t)]
        if not scored:
            return choice
        states = [transcripts[i] for i in scored]
        now = self.rollouts.estimate(states)
        gains = {agent: self._gain_per_token(agent, states, now) for agent in ("long", "short")}
        for n, i in enumerate(scored):
            key = (transcripts[i].problem.id, transcripts[i].sample)
            self.decided[key] = self.decided.get(key, 0) + 1
            self.stats["decisions"] += 1
            best = max(("short", "long"), key=lambda agent: gains[agent][n])  # a tie goes to the cheaper agent
            if gains[best][n] > 0:
                choice[i] = best
                self.stats[best] += 1
            else:
                self.stats["fallback"] += 1
        return choice

    def _gain_per_token(self, agent: str, states: list[Transcript], now) -> list[float]:
        """Per state: (chance after a chunk by ``agent`` - chance now) / the chunk's mean length. A candidate that
        wrote the final answer is graded as it is; one rollout after each other candidate, all in one batch."""
        from longshort.grader import grade
        from longshort.transcript import Turn
        from longshort.turns import turn_request, turn_seed

        p, k = self.protocol, self.scoring.rollouts
        requests = [turn_request(s, [p.open_id(agent)], p.think_stops(agent), self.solve.chunk_tokens,
                                 self.max_context[agent], self.scoring.temperature, self.scoring.top_p,
                                 turn_seed(self.rollouts.seed, s), n=k, logprobs=False) for s in states]
        results = self.agents[agent].generate(requests)
        chances = [0.0] * len(states)  # per state: correct answers among candidates, then rollouts after the others
        owner, lookahead = [], []  # the candidates to roll out from, and the state each came from
        for n, (state, result) in enumerate(zip(states, results)):
            for completion in result.completions:
                ids = completion.token_ids
                if ids[-1] == p.answer_close_id:
                    answer = self.rollouts.answer_text(ids)
                    chances[n] += answer is not None and grade(state.problem.kind, answer, state.problem.answer,
                                                               delimited=True)
                    continue
                closing = [] if completion.stop_reason == "stop" else [p.close_id(agent)]
                after = copy.copy(state)
                after.turns = state.turns + [Turn(agent, "think", [p.open_id(agent)], ids, None,
                                                  completion.stop_reason, "", state.segment, closing)]
                owner.append(n)
                lookahead.append(after)
        for n, estimate in zip(owner, self.rollouts.estimate(lookahead, k=1)):
            chances[n] += estimate.accuracy
        lengths = [sum(len(c.token_ids) for c in result.completions) / k for result in results]
        return [(chance / k - before.accuracy) / max(length, 1.0)
                for chance, length, before in zip(chances, lengths, now)]


def make_router(name: str, protocol, **context) -> Router:
    """The router ``name``; ``context`` (agents, tokenizer, configs) is what routers that need the models use."""
    if name not in ROUTERS:
        raise ValueError(f"unknown router '{name}'; known: {', '.join(sorted(ROUTERS))}")
    return ROUTERS[name](protocol, **context)
