"""One contract, every backend: the same tests run on HFBackend (its growing-cache decode and its fixed-shape
``decode: static``, each prefilling in groups of rows) and, where vLLM is installed, on VLLMBackend.

The reference is a plain transformers forward pass over the whole sequence, with no cache and no batching.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from longshort.agents.backend import ContextLengthError, GenerationRequest


@pytest.fixture(scope="module", params=["hf", "hf-static", pytest.param("vllm", marks=pytest.mark.vllm)])
def backend(request, tiny_config):
    engine, _, decode = request.param.partition("-")
    config = tiny_config.long.model_copy(update={"backend": engine})
    if engine == "hf":  # a prefill budget of two prompts, so batches are prefilled in groups of rows
        config = config.model_copy(update={"decode": decode or "dynamic", "max_prefill_tokens": 64})
    if request.param == "vllm":
        pytest.importorskip("vllm")
    from longshort.agents.actor import make_backend

    backend = make_backend(config, "long")
    yield backend
    del backend


@pytest.fixture(scope="module")
def reference(tiny_config):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(tiny_config.long.path, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def prompts(tiny_config):
    from longshort.protocol import prompt_ids
    from longshort.agents.hf_backend import load_tokenizer

    tokenizer = load_tokenizer(tiny_config.long.path)
    rows = [json.loads(line) for line in open(Path(tiny_config.tiny.out_dir) / "heldout.jsonl")][:3]
    return [tuple(prompt_ids(tokenizer, r["question"])) for r in rows]


def log_probs(model, ids: list[int]) -> torch.Tensor:
    with torch.no_grad():
        return torch.log_softmax(model(torch.tensor([ids])).logits[0].float(), -1)


def reference_greedy(model, prompt, steps: int) -> list[int]:
    ids = list(prompt)
    for _ in range(steps):
        ids.append(int(log_probs(model, ids)[-1].argmax()))
    return ids[len(prompt):]


def greedy(prompt, max_new_tokens, **kw):
    return GenerationRequest(prompt, max_new_tokens, temperature=0.0, **kw)


def test_greedy_matches_reference_and_batching_changes_nothing(backend, reference, prompts):
    batched = backend.generate([greedy(p, 12) for p in prompts])
    for prompt, result in zip(prompts, batched):
        alone = backend.generate([greedy(prompt, 12)])[0].completions[0]
        completion = result.completions[0]
        assert completion.token_ids == alone.token_ids
        assert completion.token_ids == reference_greedy(reference, prompt, len(completion.token_ids))
        assert result.prompt_tokens == len(prompt)


def test_logprobs_are_raw_model_logprobs_of_sampled_tokens(backend, reference, prompts):
    prompt = prompts[0]
    completion = backend.generate([GenerationRequest(prompt, 10, temperature=0.7, seed=3)])[0].completions[0]
    full = log_probs(reference, list(prompt) + completion.token_ids[:-1])
    expected = [float(full[len(prompt) - 1 + k, t]) for k, t in enumerate(completion.token_ids)]
    assert completion.logprobs == pytest.approx(expected, abs=2e-3)


def test_stops_on_any_of_several_stop_ids_and_keeps_the_stop_token(backend, prompts):
    free = backend.generate([greedy(prompts[1], 8)])[0].completions[0].token_ids
    stop = free[3]
    if stop in free[:3]:
        pytest.skip("greedy output repeats its 4th token earlier")
    other = next(t for t in range(10, 100) if t not in free)
    completion = backend.generate([greedy(prompts[1], 8, stop_token_ids=(other, stop))])[0].completions[0]
    assert completion.token_ids == free[:4]
    assert completion.stop_reason == "stop" and completion.stop_token_id == stop


def test_max_new_tokens_ends_with_length(backend, prompts):
    completion = backend.generate([greedy(prompts[2], 4)])[0].completions[0]
    assert len(completion.token_ids) == 4
    assert completion.stop_reason == "length" and completion.stop_token_id is None


def test_seeded_sampling_is_reproducible_and_independent_of_the_batch(backend, prompts):
    # a high temperature, so a confident tiny model still draws different samples
    request = GenerationRequest(prompts[0], 16, temperature=2.0, seed=11, n=3)
    alone = backend.generate([request])[0]
    together = backend.generate([GenerationRequest(prompts[1], 5, temperature=2.0, seed=5), request])[1]
    assert [c.token_ids for c in alone.completions] == [c.token_ids for c in together.completions]
    assert len(alone.completions) == 3
    assert len({tuple(c.token_ids) for c in alone.completions}) > 1, "n samples at a high temperature should differ"


def test_rows_that_end_early_change_no_other_row(backend, prompts):
    """Ten rows ending one step apart: the batch shrinks under the rest (HF static: into smaller shapes)."""
    requests = [GenerationRequest(prompts[k % 3], 2 + k, temperature=1.5, seed=k) for k in range(10)]
    together = backend.generate(requests)
    for request, result in zip(requests, together):
        completion = result.completions[0]
        assert len(completion.token_ids) == request.max_new_tokens or completion.stop_reason == "stop"
        assert completion.token_ids == backend.generate([request])[0].completions[0].token_ids


def test_tiny_top_p_is_greedy(backend, prompts):
    sampled = backend.generate([GenerationRequest(prompts[0], 10, temperature=1.0, top_p=1e-6, seed=1)])[0]
    assert sampled.completions[0].token_ids == backend.generate([greedy(prompts[0], 10)])[0].completions[0].token_ids


def test_prompt_longer_than_context_is_refused_with_the_model_named(backend):
    with pytest.raises(ContextLengthError, match="long"):
        backend.generate([greedy((5,) * (backend.max_context + 1), 4)])


def test_prefix_reuse_changes_no_token_and_skips_the_shared_prefill(backend, reference, prompts):
    """The next turn's prompt extends the last one: only the new tokens are computed, the output is unchanged.

    The first prompt is a few hundred tokens, so vLLM, which reuses whole blocks, has some to reuse."""
    base = (prompts[0] + prompts[1] + prompts[2]) * 3
    first = backend.generate([greedy(base, 10)])[0].completions[0]
    longer = base + tuple(first.token_ids)
    (result,) = backend.generate([greedy(longer, 8)])
    completion = result.completions[0]
    assert completion.token_ids == reference_greedy(reference, longer, len(completion.token_ids))
    assert result.prompt_tokens == len(longer)
    assert 0 < result.prefill_tokens < result.prompt_tokens
    if hasattr(backend, "prefix_cache"):  # HF reuses any common prefix; vLLM whole blocks of it
        assert result.prefill_tokens <= len(first.token_ids)
        samples = backend.generate([GenerationRequest(longer, 4, temperature=1.0, seed=1, n=3)])[0]
        assert samples.prefill_tokens == 1  # three samples, one prompt, cached but for the last token
