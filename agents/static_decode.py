"""Decoding at fixed shapes, so that on a GPU a step is captured once as a CUDA graph and replayed.

Eager decoding of a large model is bound by Python and kernel launches, not by the GPU: a step of a 7B model is
hundreds of small kernels, each launched from Python. Here the KV cache is preallocated per shape (rows rounded up
to a multiple of ``ROW_STEP``, or a power of two below it; length to a multiple of ``LENGTH_STEP``), every row
writes the same column, and the attention mask is a 4D additive tensor updated in place, so one step (mask, forward,
positions) has the same shapes and addresses every time: on CUDA it is captured once per shape and replayed. The
step's attention is its own (``grouped_decode_attention``): with a mask, transformers' SDPA path would copy each KV
head once per query head, multiplying the bytes a step reads.

Finished rows keep their slot until at most half the slots are live; the live rows then move to a smaller shape, so
a straggler costs at most twice its own work and a call sees only a handful of shapes. The shapes of the latest
cache length are kept for the next call (the waves of a benchmark, the segments of a folded run); a call of
another length frees them.
"""
from __future__ import annotations

ROW_STEP = 8
LENGTH_STEP = 256
GROUPED_DECODE = "longshort_grouped_decode"  # the attention function of a fixed-shape step, registered with transformers


def slots_for(rows: int) -> int:
    """The rows of the shape that holds ``rows`` sequences."""
    if rows <= ROW_STEP:
        return 1 << (rows - 1).bit_length()
    return -(-rows // ROW_STEP) * ROW_STEP


def columns_for(tokens: int) -> int:
    """The cache length that holds ``tokens`` positions."""
    return -(-tokens // LENGTH_STEP) * LENGTH_STEP


def check_supported(config) -> None:
    """The fixed decode passes one full-attention mask to every layer: refuse models with sliding-window layers."""
    if "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        raise ValueError(f"decode: static does not support the sliding-window attention of "
                         f"{config.model_type} models; use decode: dynamic")


def grouped_decode_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Attention of one new token per row that reads each KV head once: the query heads sharing a KV head become
    that head's queries ([rows, KV heads, group, dim]), so grouped-query models need no copy of the KV per query
    head, and SDPA takes the additive mask as is."""
    import torch

    rows, heads, _, dim = query.shape
    grouped = query.reshape(rows, key.shape[1], heads // key.shape[1], dim)
    out = torch.nn.functional.scaled_dot_product_attention(grouped, key, value, attn_mask=attention_mask, scale=scaling)
    return out.reshape(rows, heads, 1, dim).transpose(1, 2), None


class FixedCache:
    """Per-layer keys and values of shape [slots, KV heads, length, head dim]. Speaks the one method of
    transformers' cache protocol that a forward pass with explicit positions and a 4D mask calls: ``update``."""

    def __init__(self, model, slots: int, length: int):
        import torch

        config = model.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        shape = (slots, config.num_key_value_heads, length, head_dim)
        param = next(model.parameters())
        self.keys = [torch.zeros(shape, dtype=param.dtype, device=param.device)
                     for _ in range(config.num_hidden_layers)]
        self.values = [torch.zeros_like(k) for k in self.keys]
        self.column = torch.zeros(1, dtype=torch.long, device=param.device)  # where this step's token goes

    def update(self, keys, values, layer_idx: int, *args, **kwargs):
        self.keys[layer_idx].index_copy_(2, self.column, keys)
        self.values[layer_idx].index_copy_(2, self.column, values)
        return self.keys[layer_idx], self.values[layer_idx]


class StepGraph:
    """One shape: the cache, the step's inputs (tokens, positions, mask) and, on CUDA, the captured step."""

    WARMUP_STEPS = 2  # eager steps before capture, so lazy initialization happens outside the graph

    def __init__(self, model, slots: int, length: int):
        import torch
        from transformers import AttentionInterface

        AttentionInterface.register(GROUPED_DECODE, grouped_decode_attention)
        self.model, self.slots, self.length = model, slots, length
        param = next(model.parameters())
        self.cache = FixedCache(model, slots, length)
        self.tokens = torch.zeros((slots, 1), dtype=torch.long, device=param.device)
        self.positions = torch.zeros((slots, 1), dtype=torch.long, device=param.device)
        self.masked = torch.finfo(param.dtype).min
        self.mask = torch.full((slots, 1, 1, length), self.masked, dtype=param.dtype, device=param.device)
        self.graph = None
        if param.device.type == "cuda":
            self._capture()

    def _step(self):
        """Attend to this step's column, run the model on the tokens, advance the positions and the column."""
        self.mask.index_fill_(3, self.cache.column, 0.0)
        config = self.model.config
        usual, config._attn_implementation = config._attn_implementation, GROUPED_DECODE
        try:
            out = self.model(input_ids=self.tokens, attention_mask=self.mask, position_ids=self.positions,
                             past_key_values=self.cache, use_cache=True)
        finally:
            config._attn_implementation = usual
        self.positions.add_(1)
        self.cache.column.add_(1)
        return out.logits[:, -1, :].float()

    def _capture(self) -> None:
        import torch

        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            for _ in range(self.WARMUP_STEPS):
                self._step()
        torch.cuda.current_stream().wait_stream(stream)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self.logits = self._step()

    def run(self):
        """Logits of every slot for the tokens in ``self.tokens``."""
        if self.graph is None:
            return self._step()
        self.graph.replay()
        return self.logits

    def reset(self, rows: int, columns: int) -> None:
        """Start a call of ``rows`` rows whose prefilled KV takes the first ``columns`` columns."""
        self.prefilled = columns
        self.cache.column.fill_(columns)
        self.mask.fill_(self.masked)
        self._settle_idle(rows)

    def place(self, cache, mask, rows, sources) -> None:
        """Put rows ``sources`` of a prefilled group (its transformers cache and 2D mask) into slots ``rows``,
        right-aligned before the first free column."""
        import torch

        end = self.prefilled
        start = end - mask.shape[1]
        for mine_keys, mine_values, group in zip(self.cache.keys, self.cache.values, cache.layers):
            mine_keys[rows, :, start:end] = group.keys[sources]
            mine_values[rows, :, start:end] = group.values[sources]
        self.mask[rows, 0, 0, start:end] = torch.where(mask[sources].bool(), 0.0, self.masked).to(self.mask.dtype)
        self.positions[rows, 0] = mask[sources].sum(-1)

    def take(self, other: "StepGraph", slots) -> None:
        """Move the rows in ``slots`` of ``other`` (same length) into the first slots of this shape."""
        rows = len(slots)
        for mine, theirs in zip(self.cache.keys + self.cache.values, other.cache.keys + other.cache.values):
            mine[:rows].copy_(theirs[slots])
        self.cache.column.copy_(other.cache.column)
        self.mask[:rows].copy_(other.mask[slots])
        self.mask[rows:].fill_(self.masked)
        self.positions[:rows].copy_(other.positions[slots])
        self._settle_idle(rows)

    def _settle_idle(self, rows: int) -> None:
        """Idle slots attend to one column: their output is never read, but it stays finite."""
        self.mask[rows:, 0, 0, 0] = 0.0
        self.positions[rows:] = 0


class StaticDecoder:
    """The fixed-shape step graphs of one model, kept for the latest cache length."""

    def __init__(self, model):
        check_supported(model.config)
        self.model = model
        self.graphs: dict[tuple[int, int], StepGraph] = {}

    def graph(self, slots: int, length: int) -> StepGraph:
        if any(known != length for _, known in self.graphs):
            self.graphs.clear()
        if (slots, length) not in self.graphs:
            self.graphs[(slots, length)] = StepGraph(self.model, slots, length)
        return self.graphs[(slots, length)]

    def start(self, rows: int, columns: int, steps: int) -> "StaticDecode":
        """The decode of ``rows`` rows of ``columns`` prefilled columns (placed next) and up to ``steps`` more."""
        graph = self.graph(slots_for(rows), columns_for(columns + steps))
        graph.reset(rows, columns)
        return StaticDecode(self, graph, rows)


class StaticDecode:
    """One call's decode in fixed shapes: the live rows and the slots they hold."""

    def __init__(self, decoder: StaticDecoder, graph: StepGraph, rows: int):
        import torch

        self.decoder, self.graph = decoder, graph
        self.slots = torch.arange(rows, device=graph.tokens.device)

    def place(self, cache, mask, rows, sources) -> None:
        self.graph.place(cache, mask, rows, sources)

    def advance(self, chosen, keep=None):
        """Feed each live row its chosen token (``keep``: the positions of the rows still live, when some ended);
        returns the next logits of the live rows."""
        import torch

        if keep is not None:
            self.slots = self.slots[keep]
            smaller = slots_for(len(self.slots))
            if len(self.slots) <= self.graph.slots // 2 and smaller < self.graph.slots:
                graph = self.decoder.graph(smaller, self.graph.length)
                graph.take(self.graph, self.slots)
                self.graph = graph
                self.slots = torch.arange(len(self.slots), device=self.slots.device)
        self.graph.tokens.index_copy_(0, self.slots, chosen[:, None])
        return self.graph.run()[self.slots]
