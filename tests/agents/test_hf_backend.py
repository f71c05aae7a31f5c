"""HFBackend settings that shape its work without changing its output: max_batch_size, prefix_cache_tokens."""
from __future__ import annotations

import json
from pathlib import Path

from longshort.agents.backend import GenerationRequest


def requests(tiny_config):
    from longshort.agents.hf_backend import load_tokenizer
    from longshort.protocol import prompt_ids

    tokenizer = load_tokenizer(tiny_config.long.path)
    rows = [json.loads(line) for line in open(Path(tiny_config.tiny.out_dir) / "heldout.jsonl")][:5]
    return [GenerationRequest(prompt_ids(tokenizer, r["question"]), 12, temperature=1.0, seed=i, n=2)
            for i, r in enumerate(rows)]


def test_max_batch_size_splits_rows_into_micro_batches_with_the_same_completions(tiny_config):
    from longshort.agents.hf_backend import HFBackend

    outputs, batches = [], []
    for size in (64, 3):
        backend = HFBackend(tiny_config.long.model_copy(update={"max_batch_size": size}), "long")
        forward = backend.model.forward
        widths = []

        def counted(*args, **kwargs):
            widths.append(kwargs["input_ids"].shape[0])
            return forward(*args, **kwargs)

        backend.model.forward = counted
        outputs.append([[c.token_ids for c in r.completions] for r in backend.generate(requests(tiny_config))])
        batches.append(max(widths))
    assert outputs[0] == outputs[1]
    assert batches == [10, 3]  # 5 requests × n = 2 rows, at most 3 decoded together


def test_prefix_cache_tokens_bounds_the_cache(tiny_config):
    from longshort.agents.hf_backend import HFBackend

    for bound in (10_000, 60):
        backend = HFBackend(tiny_config.long.model_copy(update={"prefix_cache_tokens": bound}), "long")
        backend.generate(requests(tiny_config))
        cache = backend.prefix_cache
        assert 0 < cache.tokens <= bound and cache.tokens == sum(len(ids) for ids in cache.entries)
        if bound == 60:
            assert len(cache.entries) < 5  # the older prompts were evicted
