"""The OpenRLHF SFT path, as far as it runs without a GPU: its real dataset class reads our data back to our ids
and masks, and its real argument parser (0.11.2's source) accepts the command we build."""
from __future__ import annotations

import json
import shlex
from pathlib import Path
from types import SimpleNamespace

import pytest

openrlhf_datasets = pytest.importorskip("openrlhf.datasets", reason="openrlhf (installed with --no-deps) is absent")


@pytest.fixture(scope="module")
def samples(tiny_config):
    from longshort.data.coldstart import build_transcript
    from longshort.problem import Problem
    from longshort.rl.samples import sft_samples
    from longshort.runner import load_shared_tokenizer

    tokenizer, protocol = load_shared_tokenizer(tiny_config)
    problem = Problem("p", "x=1.\nop1: +1.\nop2: *3.\nFind x modulo m=10.", "6", "synthetic", "synthetic")
    texts = [("long", "op1: +1. 1+1=2."), ("short", "Check: 1+1=2. Yes."), ("long", "op2: *3. 2*3=6."),
             ("short", "So x=6.")]
    pieces = [(a, tokenizer.encode(t, add_special_tokens=False)) for a, t in texts]
    transcript = build_transcript(problem, pieces, tokenizer, protocol)
    return tokenizer, {agent: sft_samples(transcript, agent) for agent in ("long", "short")}


def test_openrlhf_reads_our_samples_back_to_the_same_ids_and_loss_mask(samples, tmp_path):
    from datasets import Dataset

    from longshort.rl.openrlhf_sft import VERBATIM_TEMPLATE, write_dataset

    tokenizer, by_agent = samples
    for agent, agent_samples in by_agent.items():
        path = write_dataset(agent_samples, tokenizer, tmp_path / f"{agent}.jsonl")
        rows = [json.loads(line) for line in open(path)]
        args = SimpleNamespace(data=SimpleNamespace(input_key="messages", output_key=None, apply_chat_template=True,
                                                    tokenizer_chat_template=VERBATIM_TEMPLATE))
        dataset = openrlhf_datasets.SFTDataset(Dataset.from_list(rows), tokenizer, 4096, SimpleNamespace(args=args),
                                               num_processors=1, multiturn=True)
        assert len(dataset) == len(agent_samples)
        for k, ours in enumerate(agent_samples):
            ids, _, mask = dataset[k]
            n = len(ours.input_ids)
            assert ids[0, :n].tolist() == ours.input_ids  # OpenRLHF then appends its EOS
            # its mask marks the position that predicts a trained token: ours shifted left by one
            assert mask[0, : n - 1].tolist() == [float(m) for m in ours.loss_mask[1:]]
            assert mask[0, n - 1 :].sum() == 0


def test_the_command_parses_with_the_pinned_openrlhf_parser(tiny_config, tmp_path, openrlhf_parser):
    from longshort.rl.openrlhf_sft import VERBATIM_TEMPLATE, sft_command

    from longshort.rl.jobs import executable

    command = sft_command(tiny_config, "long", tmp_path / "long.jsonl", tmp_path)
    assert command[:5] == [executable("deepspeed"), "--num_gpus", str(tiny_config.coldstart.num_gpus), "--module",
                           "openrlhf.cli.train_sft"]
    args = openrlhf_parser("train_sft").parse_args(command[5:])  # an unknown flag would exit here
    values = vars(args)
    assert values["data.multiturn"] and values["data.apply_chat_template"] and values["ckpt.save_hf"]
    assert values["data.tokenizer_chat_template"] == VERBATIM_TEMPLATE
    assert values["model.model_name_or_path"] == tiny_config.long.path
    assert values["adam.lr"] == tiny_config.coldstart.learning_rate
    assert values["data.input_key"] == "messages" and values["ckpt.load_enable"] and values["ckpt.max_num"] == 1


def test_the_7b_cold_start_checkpoints_activations_at_a_7b_learning_rate(tmp_path, openrlhf_parser):
    """configs/qwen2.5-7b.yaml's cold-start: gradient checkpointing (the activations of 32K-token samples of a 7B model
    do not fit a GPU without it) and its own learning rate, not the tiny world's default."""
    from longshort.config import ColdstartConfig, load_config
    from longshort.rl.openrlhf_sft import sft_command

    config = load_config(Path(__file__).resolve().parents[2] / "configs" / "qwen2.5-7b.yaml")
    parser = openrlhf_parser("train_sft")
    for agent in ("long", "short"):
        values = vars(parser.parse_args(sft_command(config, agent, tmp_path / f"{agent}.jsonl", tmp_path)[5:]))
        assert values["model.gradient_checkpointing_enable"]
        assert values["model.model_name_or_path"] == config.model(agent).path
        assert values["adam.lr"] == config.coldstart.learning_rate <= ColdstartConfig().learning_rate / 100
        assert values["data.max_len"] == config.coldstart.max_len == 32768 and values["train.micro_batch_size"] == 1


def test_dry_run_writes_the_data_and_prints_both_commands(tiny_config, tmp_path, capsys, openrlhf_parser):
    import yaml

    from longshort.cli import main

    data = yaml.safe_load(Path(tiny_config.source).read_text())
    for section in ("long", "short"):
        data[section]["path"] = getattr(tiny_config, section).path
    data["tiny"]["out_dir"] = tiny_config.tiny.out_dir
    data["coldstart"] |= {"backend": "openrlhf", "traces": 6, "out_dir": str(tmp_path / "run")}
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    assert main(["coldstart", "--config", str(config), "--dry-run"]) == 0
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("deepspeed ")]
    assert len(printed) == 2 and "--model.model_name_or_path" in printed[0]
    parser = openrlhf_parser("train_sft")
    for line in printed:
        parser.parse_args(shlex.split(line)[5:])
    for agent in ("long", "short"):
        assert (tmp_path / "run" / "openrlhf" / f"{agent}.jsonl").stat().st_size > 0


def test_a_cold_started_model_gets_its_own_chat_template_back(tiny_config, tmp_path):
    """OpenRLHF's SFTDataset sets our training template on the very tokenizer train_sft saves beside the trained
    model; with it a solve's prompt would be the bare question. Loading such a pair is refused, and the launcher's
    restore gives the model the prompt it was trained on."""
    import shutil

    from datasets import Dataset
    from transformers import AutoTokenizer

    from longshort.protocol import prompt_ids
    from longshort.rl.openrlhf_sft import VERBATIM_TEMPLATE, restore_tokenizer
    from longshort.runner import load_shared_tokenizer

    source = tiny_config.long.path
    trained = tmp_path / "long"
    shutil.copytree(source, trained, ignore=shutil.ignore_patterns("tokenizer*", "chat_template*", "special_*"))
    tokenizer = AutoTokenizer.from_pretrained(source)  # as train_sft loads it (get_tokenizer)
    args = SimpleNamespace(data=SimpleNamespace(input_key="messages", output_key=None, apply_chat_template=True,
                                                tokenizer_chat_template=VERBATIM_TEMPLATE))
    rows = [{"messages": [{"role": "user", "content": "x=1."}, {"role": "assistant", "content": "So x=1."}]}]
    openrlhf_datasets.SFTDataset(Dataset.from_list(rows), tokenizer, 512, SimpleNamespace(args=args),
                                 num_processors=1, multiturn=True)
    tokenizer.save_pretrained(trained)  # as train_sft's strategy.save_model saves it
    question = "x=4.\nop1: +3.\nFind x modulo m=10."
    assert prompt_ids(AutoTokenizer.from_pretrained(trained), question) == tokenizer.encode(question)  # bare
    for pair in ({"long": trained}, {"long": trained, "short": trained}):
        with pytest.raises(ValueError, match=f"the chat template of {trained} renders a question bare"):
            load_shared_tokenizer(tiny_config.with_model_paths(pair))
    restore_tokenizer(tiny_config.long, trained)
    tokenizer, _ = load_shared_tokenizer(tiny_config.with_model_paths({"long": trained}))
    assert prompt_ids(tokenizer, question) == prompt_ids(AutoTokenizer.from_pretrained(source), question)


TRAIN_SFT_STAND_IN = """#!{python}
# What `deepspeed --module openrlhf.cli.train_sft` leaves behind (it needs GPUs): a DeepSpeed checkpoint, and the model
# with the tokenizer OpenRLHF saved, the training template set on it by its SFTDataset.
import shutil, sys
from pathlib import Path
from transformers import AutoTokenizer
args = dict(zip(sys.argv[1:], sys.argv[2:]))
Path(args["--ckpt.path"], "global_step1").mkdir(parents=True)
shutil.copytree(args["--model.model_name_or_path"], args["--ckpt.output_dir"], dirs_exist_ok=True)
tokenizer = AutoTokenizer.from_pretrained(args["--model.model_name_or_path"])
tokenizer.chat_template = args["--data.tokenizer_chat_template"]
tokenizer.save_pretrained(args["--ckpt.output_dir"])
with open(Path(args["--ckpt.output_dir"]).parent / "runs.txt", "a") as runs:
    runs.write(args["--ckpt.output_dir"] + "\\n")
"""


def test_the_launcher_leaves_each_trained_model_with_its_template_and_no_deepspeed_checkpoint(
        tiny_config, samples, tmp_path, monkeypatch):
    """After each job: the starting tokenizer back, the DeepSpeed checkpoint (weights and Adam's, ~100 GB for 7B)
    removed, and a rerun does not train the agent again."""
    import os
    import sys

    from longshort.rl.jobs import executable
    from longshort.rl.openrlhf_sft import launch
    from longshort.runner import load_shared_tokenizer

    if executable("deepspeed") != "deepspeed":
        pytest.skip("DeepSpeed is installed here: the launcher would run it rather than the stand-in")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "deepspeed").write_text(TRAIN_SFT_STAND_IN.format(python=sys.executable))
    (bin_dir / "deepspeed").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    tokenizer, by_agent = samples
    out = tmp_path / "run"
    for _ in range(2):
        launch(tiny_config, by_agent, tokenizer, out, dry_run=False, log=lambda *_: None)
    assert (out / "runs.txt").read_text().split() == [str(out / "long"), str(out / "short")]  # each once
    assert not (out / "checkpoints").exists() or not list((out / "checkpoints").iterdir())
    load_shared_tokenizer(tiny_config.with_model_paths({agent: out / agent for agent in ("long", "short")}))


def test_a_pair_whose_chat_templates_differ_is_refused(tiny_config, tmp_path):
    import shutil

    from longshort.runner import load_shared_tokenizer

    short = Path(shutil.copytree(tiny_config.short.path, tmp_path / "short"))
    (short / "chat_template.jinja").write_text("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}"
                                               "{% endfor %}{% if add_generation_prompt %}<|long|>{% endif %}")
    with pytest.raises(ValueError, match="must share one chat template"):
        load_shared_tokenizer(tiny_config.with_model_paths({"short": short}))
