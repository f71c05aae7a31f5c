"""The agent-executor file for OpenRLHF's ``--train.agent_func_path`` (pinned 0.11.2): our protocol inside its RL loop.

OpenRLHF loads this file in each of its vLLM engine actors and calls ``AgentExecutor().execute`` once per sample.
The agent being trained generates through that engine (token ids in, token ids and log-probs out); its partner is
served frozen by one Ray actor hosting our Backend, shared by all engines, which batches the requests of all
episodes. The orchestrator plans and applies every
turn, as in a local solve, so the sample handed back is the transcript's own: its ids and action mask come from
rl/samples.py, and its advantage from rl/rewards.py over its problem's group of samples, the code the local backend
trains with.

The launcher (rl/openrlhf_rl.py) sets, in the job's environment: ``LONGSHORT_CONFIG`` (the run config, relative
to the job's working directory), ``LONGSHORT_TRAINED`` (long | short), ``LONGSHORT_PARTNER_PATH`` (the partner's
checkpoint) and ``LONGSHORT_PARTNER_ACTOR`` (the name of its actor).
"""
from __future__ import annotations

import asyncio
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
    """Each problem's samples, gathered until all ``size`` of them have ended, so that their rewards and advantages
    are computed together by rl/rewards.py, the code the local backend trains with. OpenRLHF runs a prompt's
    ``--rollout.n_samples_per_prompt`` samples at once on one engine; the launcher sets that to
    ``rl.samples_per_problem``, this group's size."""

    def __init__(self, config, agent: str):
        self.config, self.agent, self.open = config, agent, {}

    async def join(self, key: str, transcript):
        """(The transcript's reward, its advantage for the trained agent or None where it wrote nothing), once the
        whole group has ended."""
        from longshort.rl.rewards import advantages, rewards

        members, done = self.open.setdefault(key, ([], asyncio.get_running_loop().create_future()))
        index = len(members)
        members.append(transcript)
        if len(members) == self.config.rl.samples_per_problem:
            del self.open[key]
            try:
                scored = rewards(members, self.config.rl.reward)
                done.set_result(list(zip(scored, advantages(members, scored, self.agent, self.config.rl.advantage))))
            except Exception as e:  # every sample of the group hears of it
                done.set_exception(e)
        return (await done)[index]


class AgentExecutor(AgentExecutorBase):
    def __init__(self):
        self.setup = None
        self.lock = asyncio.Lock()
        self.samples = itertools.count()  # OpenRLHF does not say which of a prompt's samples it asks for

    async def _setup(self, tokenizer, max_length: int) -> dict:
        """The config, protocol and partner handle, made once per engine."""
        async with self.lock:
            if self.setup is None:
                import ray

                from longshort.config import load_config
                from longshort.protocol import Protocol
                from longshort.rl.experience import rollout_settings

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
                solve, sampling = rollout_settings(config, step=0)
                self.setup = {"config": config, "trained": trained, "partner": partner, "solve": solve,
                              "sampling": sampling, "protocol": Protocol.from_tokenizer(config.protocol, tokenizer,
                                                                                        config.model(trained).path),
                              "partner_agent": PartnerAgent(handle, partner, min(info["max_context"], max_length),
                                                            config.rl.partner_timeout_s),
                              "groups": Groups(config, trained)}
        return self.setup

    async def execute(self, prompt, label, sampling_params, max_length: int, hf_tokenizer, llm_engine, images=None):
        from longshort.orchestrator import Orchestrator
        from longshort.problem import Problem

        try:
            problem = Problem.from_dict(json.loads(label))
        except (json.JSONDecodeError, TypeError, KeyError) as e:
            raise ValueError(f"the label of prompt {prompt[:60]!r} is not a longshort problem (JSON text); launch "
                             f"with --data.label_key label on the prompts rl/openrlhf_rl.py writes: {e}") from None
        setup = await self._setup(hf_tokenizer, max_length)
        trained, partner = setup["trained"], setup["partner"]
        agents = {trained: EngineAgent(trained, llm_engine, max_length, hf_tokenizer.eos_token_id),
                  partner: setup["partner_agent"]}
        orchestrator = Orchestrator(agents, hf_tokenizer, setup["protocol"], setup["solve"], setup["sampling"])
        transcript = orchestrator.start((problem, next(self.samples)))
        while (step := orchestrator.next_step(transcript)) is not None:
            orchestrator.apply(step, await agents[step.agent].complete(step.request))
        orchestrator.finish(transcript)
        reward, advantage = await setup["groups"].join(label, transcript)
        return episode(transcript, trained, reward, advantage, prompt, label)


def episode(transcript, trained: str, reward, advantage: float | None, prompt, label) -> dict:
    """What OpenRLHF's executor returns for one sample: the unfolded token sequence, the ranges of the trained
    agent's own tokens, their sampling log-probs (0 elsewhere), and as its "reward" the trained agent's advantage
    (0 where it wrote nothing, and so has no tokens to learn): OpenRLHF runs with its ``flash_reinforce`` estimator,
    which only subtracts the batch's mean reward, 0 for advantages centered in each group, and whitens nothing.
    The pair's reward goes to the logs as ``pair_reward``."""
    from longshort.memory import render
    from longshort.rl.samples import rl_samples

    samples = rl_samples(transcript, trained, 0.0)
    ids = render(transcript)
    mask = samples[0].action_mask if samples else [0] * len(ids)
    logprobs = samples[0].logprobs if samples else [0.0] * len(ids)
    ranges, start = [], None
    for position, own in enumerate(mask + [0]):
        if own and start is None:
            start = position
        elif not own and start is not None:
            ranges.append((start, position))
            start = None
    return {
        "prompt": prompt,
        "label": label,
        "observation_tokens": ids,
        "action_ranges": ranges,
        "rollout_log_probs": logprobs,
        "reward": advantage or 0.0,
        "scores": float(reward.correct),
        "truncated": transcript.stop_reason == "budget",
        "extra_logs": {"pair_reward": reward.total, "correct": float(reward.correct), "answered": float(reward.valid),
                       "long_tokens": float(transcript.tokens("long")),
                       "short_tokens": float(transcript.tokens("short"))},
    }
