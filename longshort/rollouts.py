"""Answer rollouts: the chance that a transcript state ends in a right answer, estimated by K rollouts of one agent.

One estimator, two ways to prompt and read an answer, by the agent's ``format``:

- ``protocol`` (the tiny world; any agent after cold-start SFT): the agent opens a new turn with
  ``scoring.answer_prompt`` and writes at most ``scoring.answer_tokens``; the answer is the text between its answer
  tags.
- ``text`` (a pretrained model, longshort/chat.py): the state's thinking is closed with the model's
  ``text.answer_prompt`` (after ``</think>`` for a reasoning model) and the model writes at most
  ``scoring.answer_tokens`` until its end-of-turn token; the answer is the answer prompt plus what it wrote, read
  as free text. Under the ``continue`` policy it instead writes on from the open thinking for
  ``scoring.continue_tokens``, and that text is the answer.

``answers`` returns the answers ungraded; ``estimate`` grades them against the problem's gold answer: training data
only (importance labels, RL turn credit, the gold ``mc-oracle`` router that labels states for the learned router).
This is the estimator the importance scorer (longshort/importance.py), the ``mc`` routers and RL turn credit share;
on the protocol path the ``continue`` policy is ``ContinueRollouts``: the scoring agent alone (for the scorer) or the
pair under the fallback router (for the ``mc`` routers) solves on through the orchestrator, so a state where nothing
is known yet (the first turn) is judged by where it leads, not by a guess.

A state's K rollouts are one request with ``n = K`` and all states go to the backend in one batch, so a backend
with prefix reuse prefills each state once. ``stats`` counts the prompt tokens computed against a naive
re-encoding of every rollout's prompt.
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from longshort.memory import render
from longshort.transcript import Transcript
from longshort.turns import turn_seed

if TYPE_CHECKING:  # the config only types an argument here; the config's validators import the routers
    from longshort.config import ScoringConfig


@dataclass(frozen=True)
class Estimate:
    correct: int
    rollouts: int

    @property
    def accuracy(self) -> float:
        return self.correct / self.rollouts


def hoeffding(rollouts: int, confidence: float) -> float:
    """Half-width t with P(|mean - p| >= t) <= 1 - confidence, for the mean of ``rollouts`` draws in [0, 1]."""
    return math.sqrt(math.log(2 / (1 - confidence)) / (2 * rollouts))


class Rollouts:
    """K answer rollouts of ``scoring.agent`` from each state: their answers (``answers``), or how many match the
    gold answer (``estimate``; training data: importance labels, turn credit, router labels). ``chat`` is the
    agent's text format, None when it speaks the protocol."""

    def __init__(self, agents: dict, tokenizer, protocol, scoring: ScoringConfig, seed: int = 0,
                 max_context: int | None = None, chat=None):
        self.agents, self.tokenizer, self.protocol = agents, tokenizer, protocol
        self.scoring, self.seed, self.chat = scoring, seed, chat
        self.max_context = max_context or agents[scoring.agent].info()["max_context"]
        self.answer_prompt = tokenizer.encode(scoring.answer_prompt, add_special_tokens=False)
        self.continues = chat is not None and scoring.policy == "continue"
        self.stats = {"prefill_tokens": 0, "naive_prefill_tokens": 0, "rollouts": 0, "rollout_tokens": 0,
                      "seconds": 0.0}

    def context(self, state: Transcript) -> list[int]:
        """The prompt of a rollout from ``state``."""
        if self.chat is None:
            return render(state) + [self.protocol.open_id(self.scoring.agent)] + self.answer_prompt
        return render(state) + ([] if self.continues else self.chat.closing)

    def fits(self, state: Transcript) -> bool:
        """Whether a rollout from ``state`` has room in the scoring model's context."""
        return len(self.context(state)) + self.room() <= self.max_context

    def room(self) -> int:
        """New tokens a rollout needs past its prompt."""
        return self.scoring.continue_tokens if self.continues else self.scoring.answer_tokens

    def estimate(self, states: list[Transcript], k: int | None = None) -> list[Estimate]:
        """K rollouts from each state (``k`` overrides the configured K), all in one batch, graded against the gold
        answer: training data only."""
        k = k or self.scoring.rollouts
        return [Estimate(c, k) for c in self._counted(self._correct, states, k)]

    def answers(self, states: list[Transcript], k: int | None = None) -> list[list[str | None]]:
        """Per state, the answer text of each of its K rollouts (None where a rollout closed no answer), all in one
        batch. Nothing is graded, so this is what inference may use."""
        return self._counted(self._answers, states, k or self.scoring.rollouts)

    def _counted(self, rollout, states: list[Transcript], k: int) -> list:
        """``rollout(states, k)``, its rollouts and time added to the stats."""
        if not states:
            return []
        start = time.perf_counter()
        found = rollout(states, k)
        self.stats["rollouts"] += k * len(states)
        self.stats["seconds"] += time.perf_counter() - start
        return found

    def _correct(self, states: list[Transcript], k: int) -> list[int]:
        """Per state, how many of its K rollouts end in the gold answer."""
        from longshort.grader import grade

        delimited = self.chat is None  # the protocol's answer tags delimit the answer; text is read as free text
        return [sum(a is not None and grade(s.problem.kind, a, s.problem.answer, delimited=delimited) for a in found)
                for s, found in zip(states, self._answers(states, k))]

    def _answers(self, states: list[Transcript], k: int) -> list[list[str | None]]:
        from longshort.agents.backend import GenerationRequest

        p, cfg = self.protocol, self.scoring
        stops = (p.answer_close_id, p.close_id(cfg.agent)) if self.chat is None else ()  # and the model's EOS
        requests = [GenerationRequest(self.context(s), self.room(), stops, cfg.temperature, cfg.top_p,
                                      turn_seed(self.seed, s), n=k, logprobs=False) for s in states]
        found = []
        for result in self.agents[cfg.agent].generate(requests):
            self.stats["prefill_tokens"] += result.prefill_tokens
            self.stats["naive_prefill_tokens"] += result.prompt_tokens * k
            self.stats["rollout_tokens"] += sum(len(c.token_ids) for c in result.completions)
            found.append([self.answer_text(c.token_ids, c.stop_reason == "stop") for c in result.completions])
        return found

    def answer_text(self, ids: list[int], stopped: bool = True) -> str | None:
        """The text a rollout is graded by: on the protocol path the decoded text between the answer tags, when
        the completion closed them; on the text path the answer prompt and what the model wrote after it (its
        end-of-turn token left out), or under ``continue`` what it wrote."""
        if self.chat is not None:
            text = self.tokenizer.decode(ids[:-1] if stopped else ids, skip_special_tokens=True)
            return text if self.continues else self.chat.answer_prompt + text
        answer = self.protocol.answer_ids(ids[:-1]) if ids[-1:] == [self.protocol.answer_close_id] else None
        return None if answer is None else self.tokenizer.decode(answer).strip()


class ContinueRollouts(Rollouts):
    """The ``continue`` policy on the protocol path: from each state the scoring agent alone (or, given ``router``,
    the pair under that router) solves on with up to ``scoring.continue_tokens`` new tokens per agent, through the
    orchestrator ``spawn(scoring, router, seed, concurrency)`` makes over these agents (orchestrator.rollout_solver);
    a rollout's answer is the one it ends with."""

    def __init__(self, *args, spawn, router: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.spawn, self.router = spawn, router or self.scoring.agent

    def room(self) -> int:
        return 1

    def _answers(self, states: list[Transcript], k: int) -> list[list[str | None]]:
        orchestrator = self.spawn(self.scoring, self.router, self.seed, max(1, len(states) * k))
        copies = []
        for index, state in enumerate(states):
            for j in range(k):
                rollout = copy.deepcopy(state)
                rollout.sample = state.sample * k + j  # the orchestrator seeds each rollout apart
                copies.append((index, rollout))
        orchestrator.solve([rollout for _, rollout in copies])
        self.stats["prefill_tokens"] += orchestrator.stats["prefill_tokens"]
        self.stats["naive_prefill_tokens"] += orchestrator.stats["naive_prefill_tokens"]
        found: list[list[str | None]] = [[] for _ in states]
        for index, rollout in copies:
            self.stats["rollout_tokens"] += rollout.tokens() - states[index].tokens()
            found[index].append(rollout.answer)
        return found
