"""The orchestrator: many transcripts, two hosted agents, one batched call per agent per round.

Each round, every live transcript asks for its next turn: the router names the writer (or the memory policy
forces a summary), the memory policy renders the context, and the orchestrator adds the open tag. All requests for
one agent go to it as one batched call, both agents decode at the same time, and finished transcripts are handed
to ``on_done`` at once (so a caller can write them to disk) and replaced by new problems.

A solve can also start from a transcript that already has turns (a prefix being scored, a state the ``mc`` router
looks ahead from); its budgets then count only the turns and tokens this solve adds.
"""
from __future__ import annotations

import functools
import time
from collections import deque
from dataclasses import dataclass
from typing import Callable, Iterable

from longshort.agents.backend import GenerationRequest
from longshort.config import SamplingConfig, ScoringConfig, SolveConfig
from longshort.memory import POLICIES
from longshort.memory import render
from longshort.problem import Problem
from longshort.protocol import AGENTS, Protocol, prompt_ids
from longshort.routers import make_router
from longshort.transcript import Transcript, Turn
from longshort.turns import turn_request, turn_seed


@dataclass
class _Step:
    transcript: Transcript
    agent: str
    kind: str  # "think" | "summary"
    forced_ids: list[int]
    request: GenerationRequest
    think_room: int | None = None  # a think turn that may open a summary itself: the most think tokens before it


@dataclass(frozen=True)
class _Taken:
    """A transcript as this solve took it up: its budgets count only what the solve adds."""

    turns: int
    tokens: dict[str, int]  # generated tokens per agent
    started: float  # perf_counter time


class _TimedAgent:
    """A router's agent handle: its ``generate`` calls add their time to ``stats["backend_s"]``, their requests to
    ``stats["router_requests"]`` and the tokens they generate to ``stats["router_tokens"]``."""

    def __init__(self, agent, stats: dict):
        self.agent, self.stats = agent, stats

    def generate(self, requests):
        return self.result(self.submit(requests))

    def submit(self, requests):
        """(Also what an orchestrator the router runs calls: ``scoring.policy: continue`` solves on.) The time
        spent inside ``submit`` and ``result`` counts, not the span between them: an orchestrator submits to both
        agents before it waits for either."""
        began = time.perf_counter()
        try:
            return requests, self.agent.submit(requests)
        finally:
            self.stats["backend_s"] += time.perf_counter() - began

    def result(self, pending):
        requests, handle = pending
        began = time.perf_counter()
        try:
            results = self.agent.result(handle)
        finally:
            self.stats["backend_s"] += time.perf_counter() - began
        self.stats["router_requests"] += len(requests)
        self.stats["router_tokens"] += sum(len(c.token_ids) for r in results for c in r.completions)
        return results

    def info(self) -> dict:
        return self.agent.info()


class Orchestrator:
    def __init__(self, agents: dict, tokenizer, protocol: Protocol, solve: SolveConfig, sampling: SamplingConfig,
                 scoring: ScoringConfig = ScoringConfig()):
        self.agents = agents
        self.tokenizer = tokenizer
        self.protocol = protocol
        self.solve_config = solve
        self.sampling = sampling
        self.max_context = {name: agent.info()["max_context"] for name, agent in agents.items()}
        self.stats = {"backend_s": 0.0, "wall_s": 0.0, "rounds": 0, "requests": 0, "router_requests": 0,
                      "router_tokens": 0, "prefill_tokens": 0, "naive_prefill_tokens": 0}
        # a router's own model calls (the mc router's lookahead) are model time too, not the orchestrator's
        timed = {name: _TimedAgent(agent, self.stats) for name, agent in agents.items()}
        self.router = make_router(solve.router, protocol, agents=timed, tokenizer=tokenizer, solve=solve,
                                  sampling=sampling, scoring=scoring, max_context=self.max_context,
                                  spawn=functools.partial(rollout_solver, timed, tokenizer, protocol))
        self.tag_ids = set(protocol.ids.values())
        self._taken: dict[int, _Taken] = {}  # id(transcript) -> the transcript as this solve took it up

    def solve(self, problems: Iterable[Problem | tuple[Problem, int] | Transcript],
              on_done: Callable[[Transcript], None] | None = None) -> list[Transcript]:
        """Solve every problem (or (problem, sample index) pair, or unfinished transcript); transcripts come back in
        completion order."""
        start = time.perf_counter()
        queue, live, finished = deque(problems), [], []
        while queue or live:
            while queue and len(live) < self.solve_config.concurrency:
                live.append(self.start(queue.popleft()))
            for transcript in live:
                self._check_limits(transcript)
            thinking = [t for t in live if not t.done and not self._summary_due(t)]
            writers = dict(zip(map(id, thinking), self.router.choose(thinking)))
            steps = [step for t in live if not t.done and (step := self._plan(t, writers.get(id(t))))]
            if steps:  # a round where every transcript stopped calls no agent
                self._run(steps)
            for transcript in [t for t in live if t.done]:
                self.finish(transcript)
                live.remove(transcript)
                finished.append(transcript)
                if on_done:
                    on_done(transcript)
        self.stats["wall_s"] += time.perf_counter() - start
        return finished

    def start(self, item) -> Transcript:
        """A transcript to solve (a new one for a problem, or ``item`` itself, which goes on under this solve's router
        and memory policy); ``finish`` releases it."""
        if isinstance(item, Transcript):
            transcript = item
        else:
            problem, sample = item if isinstance(item, tuple) else (item, 0)
            transcript = Transcript(problem, prompt_ids(self.tokenizer, problem.question), sample=sample)
        transcript.router, transcript.memory = self.solve_config.router, self.solve_config.memory.policy
        self._taken[id(transcript)] = _Taken(len(transcript.turns), {a: transcript.tokens(a) for a in AGENTS},
                                             time.perf_counter())
        return transcript

    def next_step(self, transcript: Transcript) -> _Step | None:
        """The next turn of one transcript, its router asked for it alone; None once it has stopped. With
        ``apply``, this drives a solve one transcript at a time (an asynchronous caller's own loop)."""
        self._check_limits(transcript)
        if transcript.done:
            return None
        return self._plan(transcript, None if self._summary_due(transcript) else self.router.choose([transcript])[0])

    def finish(self, transcript: Transcript) -> None:
        transcript.seconds["wall"] = round(time.perf_counter() - self._taken.pop(id(transcript)).started, 4)

    def _check_limits(self, transcript: Transcript) -> None:
        """Stop a transcript past its time or its turns (counted from when this solve took it up)."""
        taken = self._taken[id(transcript)]
        limit = self.solve_config.timeout_s
        if limit is not None and time.perf_counter() - taken.started > limit:
            transcript.stop_reason = "timeout"
        elif len(transcript.turns) - taken.turns >= self.solve_config.max_turns:
            transcript.stop_reason = "budget"

    def _segment_tokens(self, transcript: Transcript) -> int:
        return sum(len(t.token_ids) for t in transcript.turns if t.segment == transcript.segment and t.kind == "think")

    def _summary_due(self, transcript: Transcript) -> bool:
        memory = self.solve_config.memory
        return POLICIES[memory.policy].summarizes and self._segment_tokens(transcript) >= memory.fold_at

    def _self_folding(self) -> bool:
        memory = self.solve_config.memory
        return memory.folds == "self" and POLICIES[memory.policy].summarizes

    def _plan(self, transcript: Transcript, writer: str | None) -> _Step | None:
        """The next turn of ``transcript`` (a think turn by ``writer``, or a summary when none is named), or None
        after setting its stop reason."""
        cfg, memory = self.solve_config, self.solve_config.memory
        segment_tokens = self._segment_tokens(transcript)
        if writer is None:
            if transcript.folds >= memory.max_rounds:
                transcript.stop_reason = "budget"
                return None
            agent, kind, max_new = memory.summarizer, "summary", memory.summary_cap
            forced, stops = [self.protocol.ids["summary_open"]], (self.protocol.ids["summary_close"],)
        else:
            agent, kind = writer, "think"
            spent = transcript.tokens(agent) - self._taken[id(transcript)].tokens[agent]
            left = (cfg.max_long_tokens if agent == "long" else cfg.max_short_tokens) - spent
            max_new = min(cfg.chunk_tokens, left)
            if POLICIES[memory.policy].summarizes:
                max_new = min(max_new, memory.segment_budget - segment_tokens)
            if max_new < 1:
                transcript.stop_reason = "budget"
                return None
            forced = [self.protocol.open_id(agent)]
            stops = self.protocol.think_stops(agent)
            if self._self_folding():  # the writer may close its step with a summary: room for it in the same turn
                think_room, stops = max_new, stops + (self.protocol.ids["summary_close"],)
                max_new = min(max_new + memory.summary_cap + 2, left)
        request = turn_request(transcript, forced, stops, max_new, self.max_context[agent], self.sampling.temperature,
                               self.sampling.top_p, turn_seed(self.sampling.seed, transcript))
        if request is None:  # the context is full: a question longer than it stops here at once
            used = len(render(transcript)) + len(forced)
            what = "the question" if not transcript.turns else "the transcript"
            self._stop(transcript, "context", f"{what} fills {used} of the {self.max_context[agent]} tokens of "
                                              f"{agent}'s context, leaving no room to write")
            return None
        return _Step(transcript, agent, kind, forced, request, think_room if kind == "think" and self._self_folding()
                     else None)

    def _run(self, steps: list[_Step]) -> None:
        """Send each agent its requests as one batch, both agents at once, and apply the results.

        ``backend_s`` adds the time from the first submit to the last result: the round's model time, whether the
        agents run in this process or in Ray actors (a router's model calls add theirs); the rest of ``wall_s`` is
        the orchestrator's own.
        """
        by_agent: dict[str, list[_Step]] = {}
        for step in steps:
            by_agent.setdefault(step.agent, []).append(step)
        began = time.perf_counter()
        pending = {name: self.agents[name].submit([s.request for s in group]) for name, group in by_agent.items()}
        results = {name: self.agents[name].result(pending[name]) for name in by_agent}
        self.stats["backend_s"] += time.perf_counter() - began
        self.stats["rounds"] += 1
        self.stats["requests"] += len(steps)
        for name, group in by_agent.items():
            for step, result in zip(group, results[name]):
                self.stats["prefill_tokens"] += result.prefill_tokens
                self.stats["naive_prefill_tokens"] += result.prompt_tokens * len(result.completions)
                step.transcript.seconds[name] = step.transcript.seconds.get(name, 0.0) + result.seconds / len(group)
                self.apply(step, result.completions[0])

    def apply(self, step: _Step, completion) -> None:
        """Append the turn(s) ``completion`` makes of ``step`` and stop the transcript if it answered or broke.

        A think turn that may fold (``step.think_room``) and opened a summary becomes two turns: the step, and the
        writer's own summary, which begins with the summary tag it wrote (so the rendered ids are exactly the ones
        generated) and is cut and closed at ``summary_cap``. Past its think room without a summary, the turn is cut
        there, as a turn that may not fold is cut at its budget. A turn its budget cut inside an answer (the answer
        tag written, never closed) ends before that tag: a budget is no protocol error."""
        transcript, p = step.transcript, self.protocol
        tokens, logprobs, reason = completion.token_ids, completion.logprobs, completion.stop_reason
        transcript.peak_context = max(transcript.peak_context, len(step.request.prompt_ids) + len(tokens))
        room, opener = step.think_room, p.ids["summary_open"]
        if room is not None:
            opened = tokens.index(opener) if opener in tokens else None
            if opened is not None and opened <= room:
                self._self_summary(step, tokens, logprobs, opened)
                return
            if len(tokens) > room:
                tokens, logprobs, reason = tokens[:room], logprobs[:room] if logprobs else logprobs, "length"
        if reason == "length" and p.answer_open_id in tokens:  # a budget cut an answer: the turn ends where it
            opened = tokens.index(p.answer_open_id)             # opened, and the pair may answer in a later turn
            tokens, logprobs = tokens[:opened], logprobs[:opened] if logprobs else logprobs
        self._append(step, step.kind, step.forced_ids, tokens, logprobs, reason)

    def _self_summary(self, step: _Step, tokens: list[int], logprobs, opened: int) -> None:
        """The step up to the summary tag its writer wrote, then that summary (cut and closed past the cap)."""
        transcript, memory, close = step.transcript, self.solve_config.memory, self.protocol.ids["summary_close"]
        lp = logprobs or None
        if not self._append(step, "think", step.forced_ids, tokens[:opened], lp and lp[:opened], "stop", closed=True):
            return
        if transcript.folds >= memory.max_rounds:  # no fold left: the round limit ends it, as for a forced fold
            transcript.stop_reason = "budget"
            return
        summary, summary_lp = tokens[opened:], lp and lp[opened:]
        whole = summary[-1] == close and len(summary) >= 2 and len(summary) - 2 <= memory.summary_cap
        if not whole:
            keep = 1 + min(memory.summary_cap, len(summary) - 1 - (summary[-1] == close))
            summary, summary_lp = summary[:keep], summary_lp and summary_lp[:keep]
        self._append(step, "summary", [], summary, summary_lp, "stop" if whole else "length", body_from=1)

    def _append(self, step: _Step, kind: str, forced: list[int], tokens: list[int], logprobs, reason: str,
                closed: bool = False, body_from: int = 0) -> bool:
        """Append one turn; a turn the budget cut (``reason`` length) is closed so the context stays well formed.
        Returns False after stopping the transcript on a broken protocol. ``closed``: a step its writer ended by
        opening a summary (no close tag of its own); ``body_from``: leading ids that are the turn's own open tag."""
        transcript, p = step.transcript, self.protocol
        ended = reason == "stop" and not closed
        kind = "answer" if ended and tokens[-1] == p.answer_close_id else kind
        closing = []
        if reason == "length":
            closing = [p.ids["summary_close"] if kind == "summary" else p.close_id(step.agent)]
        turn = Turn(step.agent, kind, forced, tokens, logprobs, reason, self.tokenizer.decode(tokens),
                    transcript.segment, closing)
        transcript.turns.append(turn)
        body = tokens[body_from:-1] if ended else tokens[body_from:]
        allowed = {p.answer_open_id} if kind == "answer" else set()
        stray = [t for t in body if t in self.tag_ids - allowed]
        if stray or (ended and tokens[-1] not in step.request.stop_token_ids):
            what = self.tokenizer.decode(stray[:1]) if stray else "end of text"
            self._stop(transcript, "malformed", f"{step.agent} wrote {what} inside a {kind} turn")
            return False
        if kind == "answer":
            answer = p.answer_ids(body)
            if answer is None:
                self._stop(transcript, "malformed", f"{step.agent} closed an answer it never opened")
            else:
                transcript.answer = self.tokenizer.decode(answer).strip()
                transcript.stop_reason = "answered"
        return True

    @staticmethod
    def _stop(transcript: Transcript, reason: str, error: str) -> None:
        transcript.stop_reason, transcript.error = reason, error


def rollout_solver(agents: dict, tokenizer, protocol: Protocol, scoring: ScoringConfig, router: str, seed: int,
                   concurrency: int) -> Orchestrator:
    """The orchestrator of rollouts that solve on from a state (``scoring.policy: continue``): ``router`` (the
    scoring agent alone, or the pair under a fallback router) with up to ``scoring.continue_tokens`` new tokens per
    agent, sampled as the scorer samples."""
    budget = {"max_long_tokens": scoring.continue_tokens, "max_short_tokens": scoring.continue_tokens}
    solve = SolveConfig(router=router, **budget, max_turns=scoring.continue_tokens, concurrency=concurrency)
    sampling = SamplingConfig(temperature=scoring.temperature, top_p=scoring.top_p, seed=seed)
    return Orchestrator(agents, tokenizer, protocol, solve, sampling)
