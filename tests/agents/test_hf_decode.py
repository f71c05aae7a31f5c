"""HFBackend's decode paths beyond the contract: the fixed-shape decode's shapes, the buffers it keeps, what it
refuses, and on a GPU its CUDA graphs; grouped prefill of a sliding-window model.

That both paths decode exactly what a plain forward pass decodes is the backend contract's business
(test_backend_contract.py runs every contract test on ``decode: dynamic`` and ``decode: static``)."""
from __future__ import annotations

import pytest
import torch

from longshort.agents.backend import GenerationRequest


def random_model(device: str = "cpu", kind: str = "qwen2", **overrides):
    from transformers import AutoConfig, AutoModelForCausalLM

    shape = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, max_position_embeddings=4096)
    torch.manual_seed(0)
    with torch.device(device):
        config = AutoConfig.for_model(kind, **shape, **overrides)
        return AutoModelForCausalLM.from_config(config, dtype=torch.float32).eval()


def backend_over(model, decode: str, device: str = "cpu", **options):
    from longshort.agents.hf_backend import HFBackend
    from longshort.config import ModelConfig

    config = ModelConfig(path="random", device=device, decode=decode, prefix_reuse=False, **options)
    return HFBackend(config, "random", model=model)


def test_shapes_round_rows_and_length_up():
    from longshort.agents.static_decode import columns_for, slots_for

    assert [slots_for(n) for n in (1, 2, 3, 5, 8, 9, 17, 64)] == [1, 2, 4, 8, 8, 16, 24, 64]
    assert [columns_for(n) for n in (1, 256, 257, 16400)] == [256, 256, 512, 16640]


def test_shapes_of_one_length_share_one_set_of_buffers_and_another_length_frees_it():
    backend = backend_over(random_model(), "static")
    prompts = [tuple(range(3 + k, 40 + k)) for k in range(9)]
    backend.generate([GenerationRequest(p, 8 + 2 * k, temperature=0.0) for k, p in enumerate(prompts)])
    decoder = backend.static_decoder
    # 9 rows in 16 slots, then fewer as rows end; the length is the prompt plus the steps, rounded up
    assert sorted(decoder.graphs) == [1, 2, 4, 8, 16]
    buffers = decoder.buffers
    assert (buffers.capacity, buffers.length) == (16, 256)
    backend.generate([GenerationRequest(p, 8, temperature=0.0) for p in prompts[:3]])
    assert decoder.buffers is buffers  # fewer rows of the same length: the same KV
    backend.generate([GenerationRequest(prompts[0] * 8, 4, temperature=0.0)])
    assert sorted(decoder.graphs) == [1] and (decoder.buffers.capacity, decoder.buffers.length) == (1, 512)


@pytest.mark.parametrize("kind, overrides, named", [
    ("qwen2", dict(use_sliding_window=True, sliding_window=16, max_window_layers=1), "sliding-window attention"),
    ("mistral", dict(sliding_window=16), "sliding-window attention"),
    ("llama", dict(rope_scaling={"rope_type": "dynamic", "factor": 2.0}), "dynamic rotary scaling"),
])
def test_what_a_fixed_step_would_get_wrong_is_refused_by_name(kind, overrides, named):
    with pytest.raises(ValueError, match=f"does not support .*{named}.*; use decode: dynamic"):
        backend_over(random_model(kind=kind, **overrides), "static")


def test_a_step_traces_as_one_graph_so_nothing_in_it_waits_on_the_host():
    """CUDA graph capture fails on a host sync inside the step (an ``.item()``, a data-dependent branch); so does
    a full-graph trace, which runs here without a GPU."""
    from longshort.agents.static_decode import Buffers, StepGraph

    model = random_model()
    with torch.inference_mode():
        graph = StepGraph(model, Buffers(model, 4, 256), 4)
        logits = torch.compile(graph._step, fullgraph=True, backend="eager")()
    assert logits.shape == (4, 512)


def test_grouped_prefill_of_a_sliding_window_model_decodes_what_one_group_does():
    """Its cache keeps only the latest columns of each sliding layer, which the groups are aligned on."""
    model = random_model(use_sliding_window=True, sliding_window=16, max_window_layers=1)
    prompts = [tuple(range(1, 11)), tuple(range(50, 90))]
    requests = [GenerationRequest(p, 6, temperature=0.0) for p in prompts]
    grouped = backend_over(model, "dynamic", max_prefill_tokens=30).generate(requests)
    together = backend_over(model, "dynamic").generate(requests)
    assert [r.completions[0].token_ids for r in grouped] == [r.completions[0].token_ids for r in together]


@pytest.mark.gpu
def test_cuda_graphs_decode_what_the_growing_cache_decodes_and_are_captured_once_per_shape():
    model = random_model("cuda")
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


def test_warming_up_a_shape_at_the_last_column_writes_inside_the_buffers_and_changes_no_live_state():
    """A shape is captured when a call first needs it, possibly with one step left before the cache is full: the
    warm-up steps before capture must not move past that column or leave the step's state moved."""
    from longshort.agents.static_decode import Buffers, StepGraph

    model = random_model()
    with torch.inference_mode():
        buffers = Buffers(model, 4, 256)
        buffers.reset(4, 255)
        graph = StepGraph(model, buffers, 4)  # on a GPU, the capture warms up here
        keys = [k[:, :, :255].clone() for k in buffers.keys]
        before = buffers.column.clone(), buffers.positions.clone(), buffers.mask.clone()
        graph.warm_up()
    after = buffers.column, buffers.positions, buffers.mask
    assert all(torch.equal(a, b) for a, b in zip(before, after))
    assert all(torch.equal(k[:, :, :255], kept) for k, kept in zip(buffers.keys, keys))
