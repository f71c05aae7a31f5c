"""HFBackend's fixed-shape decode: its shapes, the shapes it keeps, what it refuses, and on a GPU its CUDA graphs.

That it decodes exactly what the growing-cache path decodes is the backend contract's business
(test_backend_contract.py runs every contract test on ``decode: static``)."""
from __future__ import annotations

import pytest
import torch

from longshort.agents.backend import GenerationRequest


def random_qwen2(device: str = "cpu", **overrides):
    from transformers import AutoModelForCausalLM, Qwen2Config

    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, max_position_embeddings=4096)
    torch.manual_seed(0)
    with torch.device(device):
        return AutoModelForCausalLM.from_config(Qwen2Config(**shape, **overrides), dtype=torch.float32).eval()


def backend_over(model, decode: str, device: str = "cpu"):
    from longshort.agents.hf_backend import HFBackend
    from longshort.config import ModelConfig

    config = ModelConfig(path="random", device=device, decode=decode, prefix_reuse=False)
    return HFBackend(config, "random", model=model)


def test_shapes_round_rows_and_length_up():
    from longshort.agents.static_decode import columns_for, slots_for

    assert [slots_for(n) for n in (1, 2, 3, 5, 8, 9, 17, 64)] == [1, 2, 4, 8, 8, 16, 24, 64]
    assert [columns_for(n) for n in (1, 256, 257, 16400)] == [256, 256, 512, 16640]


def test_a_call_of_another_length_frees_the_shapes_of_the_last():
    backend = backend_over(random_qwen2(), "static")
    prompts = [tuple(range(3 + k, 40 + k)) for k in range(9)]
    backend.generate([GenerationRequest(p, 8 + 2 * k, temperature=0.0) for k, p in enumerate(prompts)])
    # 9 rows in 16 slots, then fewer as rows end; the length is the prompt plus the steps, rounded up
    assert sorted(backend.static_decoder.graphs) == [(1, 256), (2, 256), (4, 256), (8, 256), (16, 256)]
    backend.generate([GenerationRequest(prompts[0] * 8, 4, temperature=0.0)])
    assert sorted(backend.static_decoder.graphs) == [(1, 512)]


def test_sliding_window_models_are_refused_by_name():
    model = random_qwen2(use_sliding_window=True, sliding_window=16, max_window_layers=1)
    with pytest.raises(ValueError, match="sliding-window attention of qwen2 models; use decode: dynamic"):
        backend_over(model, "static")


def test_a_step_traces_as_one_graph_so_nothing_in_it_waits_on_the_host():
    """CUDA graph capture fails on a host sync inside the step (an ``.item()``, a data-dependent branch); so does
    a full-graph trace, which runs here without a GPU."""
    from longshort.agents.static_decode import StepGraph

    with torch.inference_mode():
        graph = StepGraph(random_qwen2(), 4, 256)
        logits = torch.compile(graph._step, fullgraph=True, backend="eager")()
    assert logits.shape == (4, 512)


@pytest.mark.gpu
def test_cuda_graphs_decode_what_the_growing_cache_decodes_and_are_captured_once_per_shape():
    model = random_qwen2("cuda")
    static, dynamic = backend_over(model, "static", "cuda"), backend_over(model, "dynamic", "cuda")
    requests = [GenerationRequest(tuple(range(5 + k, 60 + 3 * k)), 6 + 3 * k, temperature=1.0, seed=k)
                for k in range(10)]
    first = static.generate(requests)
    graphs = dict(static.static_decoder.graphs)
    assert all(graph.graph is not None for graph in graphs.values())
    again = static.generate(requests)
    assert static.static_decoder.graphs == graphs  # the same captured objects, replayed
    expected = dynamic.generate(requests)
    for a, b, c in zip(first, again, expected):
        assert a.completions[0].token_ids == b.completions[0].token_ids == c.completions[0].token_ids
        assert a.completions[0].logprobs == pytest.approx(c.completions[0].logprobs, abs=1e-3)
