"""Cold-start SFT on OpenRLHF (pinned 0.11.2): our samples in the form its SFT dataset reads, and the exact
``deepspeed --module openrlhf.cli.train_sft`` command.

OpenRLHF's multi-turn SFT dataset renders a list of chat messages with the tokenizer's chat template, re-tokenizes
the text and trains on the assistant messages. We hand it each sample as messages whose contents, joined, are the
sample's own text: a run of trained tokens is an assistant message, every other run a user message, and the chat
template (``VERBATIM_TEMPLATE``) writes the contents and nothing else. Every run boundary sits next to a protocol
tag, a special token, so the re-tokenized ids equal our ids and its loss mask equals ours (tests check both with
its real dataset class). That dataset class also sets the template on the tokenizer OpenRLHF saves with the trained
model, so the launcher saves the starting tokenizer back over it after each job.
"""
from __future__ import annotations

import json
import shlex
import shutil
from pathlib import Path

VERBATIM_TEMPLATE = "{% for message in messages %}{{ message['content'] }}{% endfor %}"


def messages(sample, tokenizer) -> list[dict]:
    """The sample as alternating user / assistant messages (assistant = the runs its loss covers)."""
    runs: list[tuple[int, list[int]]] = []
    for token, trained in zip(sample.input_ids, sample.loss_mask):
        if runs and runs[-1][0] == trained:
            runs[-1][1].append(token)
        else:
            runs.append((trained, [token]))
    return [{"role": "assistant" if trained else "user", "content": tokenizer.decode(ids)} for trained, ids in runs]


def write_dataset(samples, tokenizer, path: Path) -> Path:
    """One JSON line per sample: ``{"messages": [...]}``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for sample in samples:
            f.write(json.dumps({"messages": messages(sample, tokenizer)}) + "\n")
    return path


def sft_command(config, agent: str, dataset: Path, out: Path) -> list[str]:
    """The launch command for one agent; its flags are those of openrlhf.cli.train_sft in 0.11.2, its launcher the
    ``deepspeed`` of this environment."""
    from longshort.rl.jobs import executable

    cfg, model = config.coldstart, config.model(agent)
    return [
        executable("deepspeed"), "--num_gpus", str(cfg.num_gpus), "--module", "openrlhf.cli.train_sft",
        "--model.model_name_or_path", model.path,
        "--data.dataset", str(dataset),
        "--data.input_key", "messages",
        "--data.multiturn",
        "--data.apply_chat_template",
        "--data.tokenizer_chat_template", VERBATIM_TEMPLATE,
        "--data.max_len", str(cfg.max_len),
        "--train.max_epochs", str(cfg.max_epochs),
        "--train.micro_batch_size", str(cfg.micro_batch_size),
        "--train.batch_size", str(cfg.batch_size),
        "--train.seed", str(cfg.seed),
        "--adam.lr", str(cfg.learning_rate),
        "--ds.zero_stage", str(cfg.zero_stage),
        "--ds.param_dtype", "bf16",
        "--ds.attn_implementation", cfg.attn_implementation,
        "--model.gradient_checkpointing_enable",  # a 7B model's activations at max_len do not fit otherwise
        "--ckpt.output_dir", str(out / agent),
        "--ckpt.save_hf",
        "--ckpt.path", str(out / "checkpoints" / f"openrlhf-{agent}"),
        "--ckpt.save_steps", str(cfg.checkpoint_every),
        "--ckpt.max_num", "1",  # the latest DeepSpeed state (weights and Adam's, ~100 GB for 7B); removed after
        "--ckpt.load_enable",  # a rerun resumes from it
        "--logger.tensorboard_dir", str(out / "logs" / f"openrlhf-{agent}"),
    ]


def restore_tokenizer(model, trained: Path) -> None:
    """Save the starting model's tokenizer over the one OpenRLHF saved with the trained model: its SFT dataset
    sets ``VERBATIM_TEMPLATE`` as the chat template of the very tokenizer it saves, and with that template a solve's
    prompt would be the bare question instead of the chat turn the model was trained on."""
    from longshort.agents.hf_backend import load_tokenizer

    load_tokenizer(model.path, model.trust_remote_code).save_pretrained(trained)


def launch(config, samples: dict, tokenizer, out: Path, dry_run: bool, log=print) -> list[list[str]]:
    """Write each agent's dataset and run (or, dry, print) its command, the long agent first. After a run succeeds
    the trained model gets its starting tokenizer back, the run's DeepSpeed checkpoint is removed (``out/<agent>``
    holds the model) and a ``done`` marker makes a rerun skip it; a failed run resumes from its checkpoint."""
    import subprocess

    commands = []
    for agent in ("long", "short"):
        dataset = write_dataset(samples[agent], tokenizer, out / "openrlhf" / f"{agent}.jsonl")
        command = sft_command(config, agent, dataset, out)
        commands.append(command)
        log(shlex.join(command))
        done = out / "openrlhf" / f"{agent}.done"
        if dry_run or done.exists():
            continue
        subprocess.run(command, check=True)
        restore_tokenizer(config.model(agent), out / agent)
        shutil.rmtree(out / "checkpoints" / f"openrlhf-{agent}", ignore_errors=True)
        done.write_text("")
    return commands
