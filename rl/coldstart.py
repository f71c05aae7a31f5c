"""Cold-start SFT (`make train-coldstart`): synthesize the data, train both agents, evaluate before and after (on
``eval.heldout``, any config: run_benchmarks.before_after).

``coldstart.backend: local`` trains here (CPU or one GPU, rl/sft.py); ``openrlhf`` writes the data for OpenRLHF and
runs its SFT launcher per agent (rl/openrlhf_sft.py; ``--dry-run`` only prints the commands).

Runs into ``coldstart.out_dir``: ``scored.jsonl``, ``transcripts.jsonl``, ``samples/<agent>/`` (JSONL and a
``datasets`` dataset), ``manifest.json``, ``checkpoints/<agent>/`` (the training state, saved every
``checkpoint_every`` steps), ``logs/<agent>.jsonl`` (loss per step), and the trained agents as Hugging Face folders
``long/`` and ``short/``. A rerun resumes: scored traces are not scored again and training continues from its last
checkpoint. A folder that holds a run of another config is refused unless ``overwrite``.
"""
from __future__ import annotations

import json
import random
from pathlib import Path

from longshort.config import Config
from longshort.runs import Claim, claim, model_settings


def tiny_traces(config: Config) -> list[tuple]:
    """(problem, synthetic problem, long-style trace) for the tiny world's first ``coldstart.traces`` training
    problems."""
    from longshort.data.synthetic import long_trace
    from longshort.data.tiny_world import as_problem, problems

    rng = random.Random(config.coldstart.seed)
    train_set = problems(config.tiny).train[: config.coldstart.traces]
    return [(as_problem(p, i), p, long_trace(p, rng, config.tiny.long_style)) for i, p in enumerate(train_set)]


def tiny_inputs(traces: list[tuple]):
    """The traces of ``tiny_traces``, to score."""
    from longshort.data.synthetic import plain_text
    from longshort.importance import ScoringInput

    return [ScoringInput(problem, plain_text(chunks)) for problem, _, chunks in traces]


def prepare(out: Path, config: Config, overwrite: bool, traces: str | None = None) -> Claim:
    """Claim ``out`` for this config and traces (held until the claim is released), or resume the run of the same
    ones already there."""
    spec = {"coldstart": config.coldstart.model_dump(), "scoring": config.scoring.model_dump(),
            "chunking": config.chunking.model_dump(), "summaries_for": config.solve.memory.summarizer,
            "protocol": config.protocol.model_dump(), "models": model_settings(config),
            "traces": str(Path(traces).resolve()) if traces else None}
    return claim(out, spec, "cold-start", folder=True, overwrite=overwrite, hint="pass --overwrite to replace it")


def train_agent(config: Config, agent: str, samples, out: Path, log=print) -> Path:
    """SFT of one agent from its configured checkpoint; returns the folder of the trained model."""
    from transformers import AutoModelForCausalLM

    from longshort.agents.hf_backend import load_tokenizer
    from longshort.rl.sft import train_sft

    cfg, model_config = config.coldstart, config.model(agent)
    tokenizer = load_tokenizer(model_config.path, model_config.trust_remote_code, agent)
    model = AutoModelForCausalLM.from_pretrained(model_config.path, trust_remote_code=model_config.trust_remote_code)
    steps = cfg.long_steps if agent == "long" else cfg.short_steps
    log_path = out / "logs" / f"{agent}.jsonl"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "a") as losses:
        def record(step: int, loss: float) -> None:
            losses.write(json.dumps({"step": step + 1, "loss": round(loss, 5)}) + "\n")
            losses.flush()

        history = train_sft(model, samples, steps=steps, batch_size=cfg.batch_size,
                            learning_rate=cfg.learning_rate,
                            pad_id=tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0,
                            seed=cfg.seed, device=model_config.device, on_step=record, desc=f"sft {agent}",
                            checkpoint_dir=out / "checkpoints" / agent, checkpoint_every=cfg.checkpoint_every)
    model.save_pretrained(out / agent)
    tokenizer.save_pretrained(out / agent)
    tail = history[-20:]
    log(f"sft {agent}: {len(samples)} samples, {steps} steps, final loss {sum(tail) / max(len(tail), 1):.3f}")
    return out / agent


def run(config: Config, traces: str | None = None, overwrite: bool = False, eval_limit: int | None = 100,
        dry_run: bool = False, log=print) -> dict:
    from longshort.data.coldstart import synthesize
    from longshort.eval.run_benchmarks import before_after, heldout_benchmark
    from longshort.importance import read_scoring_inputs
    from longshort.runner import start

    out = Path(config.coldstart.out_dir)
    if dry_run and config.coldstart.backend != "openrlhf":
        raise ValueError("--dry-run prints the OpenRLHF commands: set coldstart.backend: openrlhf")
    if traces is None:
        if config.tiny is None:
            raise ValueError(f"{config.source}: no 'tiny' section, so pass --traces with long traces to learn from")
        from longshort.data.tiny_world import build

        build(config, log=log)
        generated = tiny_traces(config)
        inputs = tiny_inputs(generated)
        paragraphs = {problem.id: (synthetic, chunks) for problem, synthetic, chunks in generated}
    elif config.coldstart.rewrite == "steps":
        raise ValueError(f"{config.source}: coldstart.rewrite 'steps' rewrites the tiny world's own traces, "
                         f"not {traces}: use 'short' or 'keep'")
    else:
        paragraphs, inputs = None, read_scoring_inputs(traces)
    if eval_limit:
        heldout_benchmark(config)  # a config that cannot be evaluated stops before any work
    with prepare(out, config, overwrite, traces):
        # On OpenRLHF the models are on GPUs: each in a Ray actor placed with its own num_gpus (in this process both
        # would share one GPU), ended before the SFT jobs, which need every GPU.
        on_openrlhf = config.coldstart.backend == "openrlhf"
        hosted = start(config, use_ray=on_openrlhf)
        data = synthesize(config, hosted, inputs, out, log=log, paragraphs=paragraphs)
        if on_openrlhf:
            from longshort.rl.openrlhf_sft import launch

            for agent in hosted.agents.values():
                agent.close()
            commands = launch(config, data["samples"], hosted.tokenizer, out, dry_run, log)
            return {"manifest": data["manifest"], "commands": commands}
        trained = {agent: str(train_agent(config, agent, data["samples"][agent], out, log))
                   for agent in ("long", "short")}
        after = config.with_model_paths(trained)
        result = {"manifest": data["manifest"], "models": trained}
        if eval_limit:
            pair = ["handoff/unfold", f"handoff/{config.coldstart.fold_policy}"]
            result |= before_after(config, after, eval_limit, out / "eval", pair, log)
            summary = {k: result[k] for k in ("before", "after")}
            (out / "eval" / "summary.json").write_text(json.dumps(summary, indent=2))
        return result
