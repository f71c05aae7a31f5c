"""Free-form baselines: one model answering alone in its own text format, for the tables beside the pair.

A reasoning model (DeepSeek-R1-Distill) thinks inside its think tags and then answers; an instruct model answers
directly (longshort/chat.py). Each solve is one Transcript with a single answer turn holding every generated id;
its answer is the text after the thinking (a reasoning model) or the whole reply, graded from text by the same
grader as the pair's. The transcript's router is ``free:NAME``, which is how a report names the mode. The model's
tokens count as ``role``'s: a baseline's as the long agent's (one model doing all the thinking), ``free:short`` as
the short agent's. No answer key is read.
"""
from __future__ import annotations

import time
from typing import Callable, Iterable

from longshort.config import SamplingConfig
from longshort.problem import Problem
from longshort.transcript import Transcript, Turn
from longshort.turns import turn_seed


class FreeForm:
    """Solves problems with one hosted model in its text format (``chat``); the same ``solve`` as an Orchestrator's,
    so run_benchmarks and solve_file drive either."""

    def __init__(self, name: str, agent, tokenizer, chat, max_tokens: int, sampling: SamplingConfig,
                 concurrency: int, role: str = "long"):
        self.name, self.agent, self.tokenizer, self.chat = name, agent, tokenizer, chat
        self.max_tokens, self.sampling, self.concurrency, self.role = max_tokens, sampling, concurrency, role
        self.max_context = agent.info()["max_context"]
        # the orchestrator's counters; a free-form model has no router, so its router calls and tokens stay 0
        self.stats = {"backend_s": 0.0, "wall_s": 0.0, "rounds": 0, "requests": 0, "router_requests": 0,
                      "router_tokens": 0, "prefill_tokens": 0, "naive_prefill_tokens": 0}

    @property
    def router(self) -> str:
        return f"free:{self.name}"

    def solve(self, problems: Iterable[Problem | tuple[Problem, int]],
              on_done: Callable[[Transcript], None] | None = None) -> list[Transcript]:
        """Solve every problem (or (problem, sample index) pair), ``concurrency`` at a time in one batched call."""
        started = time.perf_counter()
        items = [item if isinstance(item, tuple) else (item, 0) for item in problems]
        finished = []
        for lo in range(0, len(items), self.concurrency):
            transcripts = [Transcript(problem, self.chat.prompt(self.tokenizer, problem.question), sample=sample,
                                      router=self.router) for problem, sample in items[lo:lo + self.concurrency]]
            for transcript in self._run(transcripts):
                finished.append(transcript)
                if on_done:
                    on_done(transcript)
        self.stats["wall_s"] += time.perf_counter() - started
        return finished

    def _run(self, transcripts: list[Transcript]) -> list[Transcript]:
        from longshort.agents.backend import GenerationRequest

        requests, runnable = [], []
        for t in transcripts:
            room = min(self.max_tokens, self.max_context - len(t.prompt_ids))
            if room < 1:
                t.stop_reason, t.error = "budget", "the question alone fills the model's context"
                continue
            runnable.append(t)
            requests.append(GenerationRequest(t.prompt_ids, room, (), self.sampling.temperature, self.sampling.top_p,
                                              turn_seed(self.sampling.seed, t)))
        began = time.perf_counter()
        results = self.agent.generate(requests) if requests else []
        self.stats["backend_s"] += time.perf_counter() - began
        self.stats["rounds"] += 1
        self.stats["requests"] += len(requests)
        for t, result in zip(runnable, results):
            completion = result.completions[0]
            self.stats["prefill_tokens"] += result.prefill_tokens
            self.stats["naive_prefill_tokens"] += result.prompt_tokens
            stopped = completion.stop_reason == "stop"
            ids = completion.token_ids
            text = self.tokenizer.decode(ids[:-1] if stopped else ids)  # the think tags kept: an R1-style trace
            t.turns.append(Turn(self.role, "answer", [], ids, completion.logprobs, completion.stop_reason, text))
            t.peak_context = len(t.prompt_ids) + len(ids)
            t.seconds[self.role] = result.seconds / len(results)
            answer = self.chat.answer(self.tokenizer, ids, stopped) if stopped else None
            if answer is not None:
                t.answer, t.stop_reason = answer, "answered"
            elif stopped:
                t.stop_reason, t.error = "malformed", f"{self.name} ended its turn without ending its thinking"
            else:
                t.stop_reason = "budget"
        return transcripts
