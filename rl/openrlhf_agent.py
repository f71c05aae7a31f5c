"""The agent-executor file for OpenRLHF's ``--train.agent_func_path`` (pinned 0.11.2): our protocol inside its RL loop.

OpenRLHF loads this file in each of its vLLM engine actors and calls ``AgentExecutor().execute`` once per
experience it wants. The agent being trained generates through that engine (token ids in, token ids and log-probs
out); its partner is served frozen by one Ray actor hosting our Backend, shared by all engines, which batches the
requests of all episodes. The orchestrator plans and applies every turn, as in a local solve, so the experiences
handed back are the transcript's own: its samples (one, or under folding one per segment) come from rl/samples.py,
and its advantage from rl/rewards.py over its problem's group of rollouts, the code the local backend trains with.

The launcher (rl/openrlhf_rl.py) sets, in the job's environment: ``LONGSHORT_CONFIG`` (the run config, relative
to the job's working directory), ``LONGSHORT_TRAINED`` (long | short), ``LONGSHORT_PARTNER_PATH`` (the partner's
checkpoint) and ``LONGSHORT_PARTNER_ACTOR`` (the name of its actor).
"""
from __future__ import annotations

import asyncio
import collections
import itertools
import json
import os

from openrlhf.utils.agent import AgentExecutorBase

NAMESPACE = "longshort"  # OpenRLHF starts Ray with an anonymous namespace; the partner actor is found in this one


class EngineAgent:
    """The agent being trained, generating through OpenRLHF's vLLM engine. Its sampling parameters are built from
    the request exactly as VLLMBackend builds the partner's (agents/vllm_backend.py): OpenRLHF's own rollout
    parameters (``min_tokens=1``, and an engine whose ``generation_config="auto"`` adds the model's other EOS ids,
    such as Qwen2.5's ``<|endoftext|>``, to the stop ids) would keep a turn from closing on its first token and end
    turns on tokens outside the protocol's stops."""

    def __init__(self, name: str, engine, max_context: int, eos_token_id: int | None):
        self.name, self.engine, self.max_context, self.eos_token_id = name, engine, max_context, eos_token_id

    def info(self) -> dict:
        return {"max_context": self.max_context}

    async def complete(self, request):
        from longshort.agents.backend import check_fits
        from longshort.agents.vllm_backend import completion_of, sampling_params, stop_ids

        params = sampling_params(request, check_fits(request, self.max_context, self.name), self.eos_token_id)
        output = await self.engine.generate(list(request.prompt_ids), params)
        return completion_of(output.outputs[0], stop_ids(request, self.eos_token_id), request.logprobs, self.name)


class BatchingPartner:
    """The frozen partner's Ray actor (an async one). Requests from all episodes of all engines queue here and go to
    its Backend one batch at a time: neither vLLM's synchronous engine (which steps until every request it holds is
    done, whoever sent it) nor the HF backend's prefix cache may be called from two threads at once. What arrives
    while a batch decodes is the next batch; requests within ``window_s`` of the first join it too."""

    def __init__(self, config, name: str, window_s: float = 0.005):
        from longshort.agents.actor import AgentActor

        self.actor = AgentActor(config, name)
        self.window_s = window_s
        self.queue: list = []
        self.serving = None  # the task that decodes batches while requests wait

    def info(self) -> dict:
        return self.actor.info()

    async def generate_one(self, request):
        future = asyncio.get_running_loop().create_future()
        self.queue.append((request, future))
        if self.serving is None:
            self.serving = asyncio.create_task(self._serve())
        return await future

    async def _serve(self) -> None:
        try:
            while self.queue:
                await asyncio.sleep(self.window_s)
                batch, self.queue = self.queue, []
                try:
                    results = await asyncio.to_thread(self.actor.generate, [request for request, _ in batch])
                except Exception as e:  # every waiting episode hears of it
                    for _, future in batch:
                        if not future.done():
                            future.set_exception(e)
                    continue
                for (_, future), result in zip(batch, results):
                    if not future.done():
                        future.set_result(result)
        finally:
            self.serving = None


class PartnerAgent:
    """The frozen partner as the orchestrator sees it: one request per call to its batching actor. A turn that takes
    longer than ``timeout_s`` fails the episode (and so the job) rather than leave it waiting for ever."""

    def __init__(self, handle, name: str, max_context: int, timeout_s: float):
        self.handle, self.name, self.max_context, self.timeout_s = handle, name, max_context, timeout_s

    def info(self) -> dict:
        return {"max_context": self.max_context}

    async def complete(self, request):
        try:
            result = await asyncio.wait_for(self.handle.generate_one.remote(request), self.timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"the {self.name} partner gave no turn within {self.timeout_s:g} s "
                               "(rl.partner_timeout_s): its actor is hung or overloaded") from None
        return result.completions[0]


class Groups:
    """Each problem's rollouts, gathered until all ``rl.samples_per_problem`` of them have ended, so that their
    rewards and advantages are computed together by rl/rewards.py, the code the local backend trains with. OpenRLHF
    runs a prompt's ``--rollout.n_samples_per_prompt`` calls at once on one engine; the launcher sets that to
    ``rl.samples_per_problem`` × ``most_segments`` (rl/experience.py): call ``i`` of a prompt plays rollout ``i``
    when ``i`` is below the group's size, and every call returns one of its rollout's experiences (rollout
    ``i % size``, part ``i // size``)."""

    def __init__(self, config, agent: str, slots: int):
        self.config, self.agent, self.slots = config, agent, slots
        self.size = config.rl.samples_per_problem
        self.open: dict = {}

    def _entry(self, key) -> dict:
        return self.open.setdefault(key, {"members": {}, "done": asyncio.get_running_loop().create_future(),
                                          "served": 0})

    def add(self, key, index: int, transcript, prompt, label) -> None:
        """Rollout ``index`` of group ``key`` has ended; the last one computes the group's experiences."""
        from longshort.rl.rewards import advantages, rewards

        entry = self._entry(key)
        entry["members"][index] = transcript
        if len(entry["members"]) == self.size and not entry["done"].done():  # (done: a rollout of it broke)
            members = [entry["members"][i] for i in range(self.size)]
            try:
                scored = rewards(members, self.config.rl.reward)
                entry["done"].set_result([episodes(t, self.agent, r, a, prompt, label, self.slots) for t, r, a in
                                          zip(members, scored, advantages(members, scored, self.agent,
                                                                          self.config.rl.advantage))])
            except Exception as e:  # every call of the group hears of it
                entry["done"].set_exception(e)

    def fail(self, key, error: Exception) -> None:
        """A rollout of group ``key`` broke: the calls waiting for the group fail with it instead of hanging."""
        done = self._entry(key)["done"]
        if not done.done():
            done.set_exception(error)

    async def experience(self, key, index: int, part: int) -> dict:
        """Part ``part`` of rollout ``index``'s experiences, once the whole group has ended."""
        entry = self._entry(key)
        try:
            return (await entry["done"])[index][part]
        finally:
            entry["served"] += 1
            if entry["served"] == self.size * self.slots:
                del self.open[key]


class AgentExecutor(AgentExecutorBase):
    def __init__(self):
        self.setup = None
        self.lock = asyncio.Lock()
        self.samples = itertools.count()  # OpenRLHF does not say which of a prompt's samples it asks for
        self.arrivals: collections.Counter = collections.Counter()  # calls per label so far

    async def _setup(self, tokenizer, max_length: int) -> dict:
        """The config, protocol and partner handle, made once per engine."""
        async with self.lock:
            if self.setup is None:
                import ray

                from longshort.config import load_config
                from longshort.protocol import Protocol
                from longshort.rl.experience import most_segments, rollout_settings

                config = load_config(os.environ["LONGSHORT_CONFIG"])
                trained = os.environ["LONGSHORT_TRAINED"]
                partner = "short" if trained == "long" else "long"
                model = config.model(partner).model_copy(update={"path": os.environ["LONGSHORT_PARTNER_PATH"]})
                remote = ray.remote(num_cpus=model.num_cpus, num_gpus=model.num_gpus)(BatchingPartner)
                # outside the engines' placement group, whose bundles the trained agent's actors already fill
                handle = remote.options(name=os.environ["LONGSHORT_PARTNER_ACTOR"], namespace=NAMESPACE,
                                        get_if_exists=True, scheduling_strategy="DEFAULT").remote(model, partner)
                try:
                    info = await asyncio.wait_for(handle.info.remote(), config.rl.partner_timeout_s)
                except asyncio.TimeoutError:
                    raise TimeoutError(f"the {partner} partner's actor did not start within "
                                       f"{config.rl.partner_timeout_s:g} s (rl.partner_timeout_s): Ray found no room "
                                       f"for {model.num_gpus:g} GPUs and {model.num_cpus:g} CPUs beside the trained "
                                       "agent's, or its model is slow to load") from None
                self.setup = {"config": config, "trained": trained, "partner": partner,
                              "settings": {p: rollout_settings(config, 0, p) for p in config.rl.policies},
                              "protocol": Protocol.from_tokenizer(config.protocol, tokenizer,
                                                                  config.model(trained).path),
                              "partner_agent": PartnerAgent(handle, partner, min(info["max_context"], max_length),
                                                            config.rl.partner_timeout_s),
                              "groups": Groups(config, trained, most_segments(config))}
        return self.setup

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        from longshort.problem import Problem

        arrival = self.arrivals[label]  # counted before anything is awaited: a prompt's calls start in order
        self.arrivals[label] += 1
        try:
            problem = Problem.from_dict(json.loads(label))
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise ValueError(f"the label of prompt {prompt[:60]!r} is not a longshort problem (JSON text); launch "
                             f"with --data.label_key label on the prompts rl/openrlhf_rl.py writes: {e}") from None
        setup = await self._setup(hf_tokenizer, max_length)
        groups = setup["groups"]
        group, call = divmod(arrival, groups.size * groups.slots)  # a prompt's calls
        key, (part, index) = (label, group), divmod(call, groups.size)
        if part == 0:  # this call plays rollout ``index``; the group's other calls carry its further segments
            try:
                transcript = await self._play(problem, setup, hf_tokenizer, llm_engine, max_length)
            except Exception as e:
                groups.fail(key, e)
                raise
            groups.add(key, index, transcript, prompt, label)
        return await groups.experience(key, index, part)

    async def _play(self, problem, setup: dict, hf_tokenizer, llm_engine, max_length: int):
        """One rollout of ``problem``, under ``rl.policy`` or (Mix-RL) a policy of ``rl.mix`` drawn for it."""
        from longshort.orchestrator import Orchestrator
        from longshort.rl.experience import rollout_policy

        sample = next(self.samples)
        config, trained, partner = setup["config"], setup["trained"], setup["partner"]
        solve, sampling = setup["settings"][rollout_policy(config, 0, problem.id, sample)]
        agents = {trained: EngineAgent(trained, llm_engine, max_length, hf_tokenizer.eos_token_id),
                  partner: setup["partner_agent"]}
        orchestrator = Orchestrator(agents, hf_tokenizer, setup["protocol"], solve, sampling)
        transcript = orchestrator.start((problem, sample))
        while (step := orchestrator.next_step(transcript)) is not None:
            orchestrator.apply(step, await agents[step.agent].complete(step.request))
        orchestrator.finish(transcript)
        return transcript


def episodes(transcript, trained: str, reward, advantage: float | None, prompt, label, slots: int) -> list[dict]:
    """What OpenRLHF's executor returns for one rollout, one experience per call of its ``slots``: first each
    sample rl/samples.py makes of it for the trained agent, as the local backend trains it (the unfolded
    transcript, or under a folding policy one sample per segment, each with the context its segment was written
    in), as token ids, the ranges of the trained agent's own tokens and their sampling log-probs (0 elsewhere);
    then, for the slots left over, the prompt alone, with no token to learn. Each carries as its "reward" the
    trained agent's advantage (0 where it wrote nothing): OpenRLHF runs with its ``flash_reinforce`` estimator,
    which only subtracts the batch's mean reward, and whitens nothing; that mean is 0, since the advantages are
    centered in each group and every rollout fills the same number of slots. Each also carries the rollout's
    logs (``pair_reward``, ...), so that their means over the batch are the rollouts' means."""
    from longshort.rl.samples import rl_samples

    samples = rl_samples(transcript, trained, 0.0)
    if len(samples) > slots:
        raise RuntimeError(f"a rollout of problem {transcript.problem.id} has {len(samples)} segments for the "
                           f"{trained} agent, more than the {slots} experiences the launcher made room for")
    empty = list(transcript.prompt_ids)
    parts = [(s.input_ids, s.action_mask, s.logprobs) for s in samples]
    parts += [(empty, [0] * len(empty), [0.0] * len(empty))] * (slots - len(samples))
    logs = {"pair_reward": reward.total, "correct": float(reward.correct), "answered": float(reward.valid),
            "long_tokens": float(transcript.tokens("long")), "short_tokens": float(transcript.tokens("short")),
            "segments": float(len(samples))}
    return [{"prompt": prompt, "label": label, "observation_tokens": list(ids), "action_ranges": own_ranges(mask),
             "rollout_log_probs": list(logprobs), "reward": advantage or 0.0, "scores": float(reward.correct),
             "truncated": transcript.stop_reason == "budget", "extra_logs": dict(logs)}
            for ids, mask, logprobs in parts]


def own_ranges(mask: list[int]) -> list[tuple[int, int]]:
    """The [start, end) ranges where ``mask`` is 1."""
    ranges, start = [], None
    for position, own in enumerate(list(mask) + [0]):
        if own and start is None:
            start = position
        elif not own and start is not None:
            ranges.append((start, position))
            start = None
    return ranges
