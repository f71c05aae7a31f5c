"""Routers decide who writes the next chunk. Each is one registered class; adding a router touches one file.

- ``long`` / ``short``: one agent writes everything (the single-model baselines).
- ``alternate``: strict turn-taking, the long agent first.
- ``handoff`` (Long⊗Short): the long agent writes a thought, the short agent carries on until it emits the
  hand-back tag, then the long agent writes the next thought.
- ``mc``: Monte Carlo lookahead without the answer key. For each transcript, each agent samples K candidate next
  chunks; one ``answer`` rollout (longshort/rollouts.py) after each candidate and K rollouts from the current
  state give 3K answers; their majority answer stands in for the unknown right one (self-consistency), and the
  chance of a right answer now, or after an agent's chunk, is the share of that group's answers that agree with
  it. The agent whose chunk raises the chance more per token writes.
- ``mc-oracle``: the same lookahead, each answer graded against the problem's gold answer. It reads the answer
  key, so it is no inference mode: it labels states for ``learned`` and, in a report, is the upper bound that
  ``mc`` and ``learned`` try to reach (its rows say so, eval/modes.py).
- ``learned``: a small classifier (longshort/router_model.py, trained by ``longshort train-router``) predicts the
  ``mc-oracle`` decision from the transcript alone, in one forward pass for all transcripts of a round.

The ``mc`` routers and ``learned`` decide the first ``scoring.router_turns`` think turns of a transcript; later
turns, and turns where neither agent's chunk raises the chance, go to ``scoring.router_fallback``. The
orchestrator asks for all its live transcripts at once (``choose``), so a router that needs the models batches
its lookahead.
"""
from __future__ import annotations

import copy
from collections import Counter

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
    standalone = True  # decides from the transcript and the protocol alone (a fallback must)
    looks_ahead = False  # calls both models between rounds
    reads_answer_key = False  # grades against the gold answer: an oracle, never an inference mode

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


class _Deciding(Router):
    """Decides the first ``scoring.router_turns`` think turns of each transcript itself (``decide``: an agent, or
    None to leave the turn to the fallback); ``scoring.router_fallback`` decides the rest."""

    standalone = False

    def __init__(self, protocol, *, scoring, **context):
        super().__init__(protocol)
        self.fallback = make_router(scoring.router_fallback, protocol)
        self.turns = scoring.router_turns
        self.decided: dict[tuple[str, int], int] = {}  # (problem id, sample) -> turns decided here
        self.stats = {"decisions": 0, "long": 0, "short": 0, "fallback": 0}

    def choose(self, transcripts):
        choice = self.fallback.choose(transcripts)
        due = [i for i, t in enumerate(transcripts)
               if self.decided.get((t.problem.id, t.sample), 0) < self.turns and self.can_decide(t)]
        for i, pick in zip(due, self.decide([transcripts[i] for i in due]) if due else []):
            key = (transcripts[i].problem.id, transcripts[i].sample)
            self.decided[key] = self.decided.get(key, 0) + 1
            self.stats["decisions"] += 1
            self.stats[pick or "fallback"] += 1
            choice[i] = pick or choice[i]
        return choice

    def can_decide(self, transcript: Transcript) -> bool:
        return True

    def decide(self, states: list[Transcript]) -> list[str | None]:
        raise NotImplementedError


@router("mc")
class MonteCarlo(_Deciding):
    """Lookahead judged by self-consistency (``chances``); ``mc-oracle`` judges by the gold answer instead."""

    looks_ahead = True

    def __init__(self, protocol, *, agents, tokenizer, solve, sampling, scoring, max_context, spawn, **context):
        from longshort.rollouts import ContinueRollouts, Rollouts

        super().__init__(protocol, scoring=scoring)
        self.agents, self.solve, self.scoring = agents, solve, scoring
        self.max_context = max_context
        self.rollouts = Rollouts(agents, tokenizer, protocol, scoring, sampling.seed, max_context[scoring.agent])
        if scoring.policy == "continue":  # solving on as the pair would after this turn: under the fallback router
            self.rollouts = ContinueRollouts(agents, tokenizer, protocol, scoring, sampling.seed,
                                             max_context[scoring.agent], spawn=spawn, router=scoring.router_fallback)
        self.on_decision = None  # called with (state, pick, gain per token by agent) after each decision

    def can_decide(self, transcript):
        return self.rollouts.fits(transcript)

    def decide(self, states):
        now = self.rollouts.answers(states)
        after = {agent: self._lookahead(agent, states) for agent in ("long", "short")}
        picks = []
        for n, state in enumerate(states):
            chance = self.chances(state, {"now": now[n], **{agent: found[n] for agent, (found, _) in after.items()}})
            gains = {agent: (chance[agent] - chance["now"]) / max(lengths[n], 1.0)
                     for agent, (_, lengths) in after.items()}
            best = max(("short", "long"), key=gains.get)  # a tie goes to the cheaper agent
            picks.append(best if gains[best] > 0 else None)
            if self.on_decision:
                self.on_decision(state, picks[-1], gains)
        return picks

    def chances(self, state: Transcript, groups: dict[str, list[str | None]]) -> dict[str, float]:
        """Per group of rollout answers (now, after a long chunk, after a short one): the share that agrees with the
        majority answer of all of them. No answer key: a state where most rollouts agree is taken as one that
        knows the answer."""
        from longshort.grader import extract_answer

        kind = state.problem.kind
        read = {group: [None if a is None else extract_answer(kind, a, delimited=True) for a in answers]
                for group, answers in groups.items()}
        votes = Counter(a for answers in read.values() for a in answers if a is not None)
        if not votes:
            return {group: 0.0 for group in groups}
        majority = votes.most_common(1)[0][0]
        return {group: sum(a == majority for a in answers) / len(answers) for group, answers in read.items()}

    def _lookahead(self, agent: str, states: list[Transcript]) -> tuple[list[list[str | None]], list[float]]:
        """Per state: the answers after each of K candidate chunks by ``agent`` (a candidate that wrote the final
        answer gives its own; one rollout after each other one, all in one batch), and the candidates' mean
        length."""
        from longshort.transcript import Turn
        from longshort.turns import turn_request, turn_seed

        p, k = self.protocol, self.scoring.rollouts
        requests = [turn_request(s, [p.open_id(agent)], p.think_stops(agent), self.solve.chunk_tokens,
                                 self.max_context[agent], self.scoring.temperature, self.scoring.top_p,
                                 turn_seed(self.rollouts.seed, s), n=k, logprobs=False) for s in states]
        results = self.agents[agent].generate(requests)
        answers: list[list[str | None]] = [[None] * k for _ in states]
        owner, lookahead = [], []  # (state, candidate) to roll out from, and the state after that candidate
        for n, (state, result) in enumerate(zip(states, results)):
            for j, completion in enumerate(result.completions):
                ids = completion.token_ids
                if ids[-1:] == [p.answer_close_id]:
                    answers[n][j] = self.rollouts.answer_text(ids)
                    continue
                closing = [] if completion.stop_reason == "stop" else [p.close_id(agent)]
                after = copy.copy(state)
                after.turns = state.turns + [Turn(agent, "think", [p.open_id(agent)], ids, None,
                                                  completion.stop_reason, "", state.segment, closing)]
                owner.append((n, j))
                lookahead.append(after)
        for (n, j), found in zip(owner, self.rollouts.answers(lookahead, k=1)):
            answers[n][j] = found[0]
        lengths = [sum(len(c.token_ids) for c in result.completions) / k for result in results]
        return answers, lengths


@router("mc-oracle")
class MonteCarloOracle(MonteCarlo):
    """``mc`` with each answer graded against the gold answer: it reads the answer key. The gold Monte Carlo
    decision, for labelling training states and as an upper bound in reports; never an inference mode."""

    reads_answer_key = True

    def chances(self, state, groups):
        """Per group: the share of answers that are the gold answer."""
        from longshort.grader import grade

        problem = state.problem
        return {group: sum(a is not None and grade(problem.kind, a, problem.answer, delimited=True)
                           for a in answers) / len(answers)
                for group, answers in groups.items()}


@router("learned")
class Learned(_Deciding):
    """The ``mc-oracle`` decision as a small classifier predicts it from the transcript (``solve.router_path``)."""

    def __init__(self, protocol, *, tokenizer, solve, scoring, **context):
        from longshort.router_model import load_router

        super().__init__(protocol, scoring=scoring)
        self.model = load_router(solve.router_path, tokenizer, protocol)

    def decide(self, states):
        return self.model.predict(states)


def make_router(name: str, protocol, **context) -> Router:
    """The router ``name``; ``context`` (agents, tokenizer, configs) is what routers that need the models use."""
    if name not in ROUTERS:
        raise ValueError(f"unknown router '{name}'; known: {', '.join(sorted(ROUTERS))}")
    return ROUTERS[name](protocol, **context)
