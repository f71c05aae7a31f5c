"""Decoding at fixed shapes, so that on a GPU a step is captured once as a CUDA graph and replayed.

Eager decoding of a large model is bound by Python and kernel launches, not by the GPU: a step of a 7B model is
hundreds of small kernels, each launched from Python. Here the KV cache is preallocated per shape (rows rounded up
to a multiple of ``ROW_STEP``, or a power of two below it; length to a multiple of ``LENGTH_STEP``), every row
writes the same column, and the attention mask is a 4D additive tensor updated in place, so one step (mask, forward,
positions) has the same shapes and addresses every time: on CUDA it is captured once per shape and replayed. The
step's attention is its own (``grouped_decode_attention``): with a mask, transformers' SDPA path would copy each KV
head once per query head, multiplying the bytes a step reads.

Finished rows keep their slot until at most half the slots are live; the live rows then move to a smaller shape, so
a straggler costs at most twice its own work and a call sees only a handful of shapes. All shapes of one cache
length share one set of buffers (the KV once, at the most rows asked for), and are kept for the next call of that
length (the waves of a benchmark, the segments of a folded run); a call of another length frees them.
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
    """Refuse what a fixed step would get wrong: one full-attention mask serves every layer (no sliding windows),
    and rotary frequencies must not change with the length (a dynamic update waits on the host, and moves them)."""
    if getattr(config, "sliding_window", None) or "sliding_attention" in (getattr(config, "layer_types", None) or ()):
        raise ValueError(f"decode: static does not support the sliding-window attention of "
                         f"{config.model_type} models; use decode: dynamic")
    rope = getattr(config, "rope_parameters", None) or getattr(config, "rope_scaling", None) or {}
    kind = rope.get("rope_type", rope.get("type"))
    if kind in ("dynamic", "longrope"):
        raise ValueError(f"decode: static does not support {kind} rotary scaling (its frequencies change with the "
                         f"length); use decode: dynamic")


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

    def __init__(self, keys, values, column):
        self.keys, self.values, self.column = keys, values, column  # column: where this step's token goes

    def update(self, keys, values, layer_idx: int, *args, **kwargs):
        self.keys[layer_idx].index_copy_(2, self.column, keys)
        self.values[layer_idx].index_copy_(2, self.column, values)
        return self.keys[layer_idx], self.values[layer_idx]


class Buffers:
    """The decode state of one cache length for up to ``capacity`` rows: the KV, the write column, and the step's
    tokens, positions and mask. Every shape of that length works in the leading slots, so there is one copy."""

    def __init__(self, model, capacity: int, length: int):
        import torch

        config = model.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        param = next(model.parameters())
        self.device, self.capacity, self.length = param.device, capacity, length
        shape = (capacity, config.num_key_value_heads, length, head_dim)
        self.keys = [param.new_zeros(shape) for _ in range(config.num_hidden_layers)]
        self.values = [param.new_zeros(shape) for _ in range(config.num_hidden_layers)]
        self.column = torch.zeros(1, dtype=torch.long, device=param.device)
        self.tokens = torch.zeros((capacity, 1), dtype=torch.long, device=param.device)
        self.positions = torch.zeros((capacity, 1), dtype=torch.long, device=param.device)
        self.masked = torch.finfo(param.dtype).min
        self.mask = torch.full((capacity, 1, 1, length), self.masked, dtype=param.dtype, device=param.device)
        self.pool = torch.cuda.graph_pool_handle() if param.device.type == "cuda" else None
        self.prefilled = 0

    def reset(self, rows: int, columns: int) -> None:
        """Start a call of ``rows`` rows whose prefilled KV takes the first ``columns`` columns. The KV is zeroed:
        a masked column adds nothing only if its values are finite."""
        for tensor in self.keys + self.values:
            tensor.zero_()
        self.prefilled = columns
        self.column.fill_(columns)
        self.mask.fill_(self.masked)
        self.settle_idle(rows)

    def place(self, cache, mask, rows, sources) -> None:
        """Put rows ``sources`` of a prefilled group (its transformers cache and 2D mask) into slots ``rows``,
        right-aligned before the first free column."""
        import torch

        end = self.prefilled
        start = end - mask.shape[1]
        for mine_keys, mine_values, group in zip(self.keys, self.values, cache.layers):
            mine_keys[rows, :, start:end] = group.keys[sources]
            mine_values[rows, :, start:end] = group.values[sources]
        self.mask[rows, 0, 0, start:end] = torch.where(mask[sources].bool(), 0.0, self.masked).to(self.mask.dtype)
        self.positions[rows, 0] = mask[sources].sum(-1)

    def gather(self, slots) -> None:
        """Move the rows in ``slots`` to the first slots (each right side is gathered before it is written)."""
        rows = len(slots)
        for tensor in self.keys + self.values + [self.mask, self.positions]:
            tensor[:rows] = tensor[slots]
        self.settle_idle(rows)

    def settle_idle(self, rows: int) -> None:
        """Slots from ``rows`` on are idle: they attend to one column, so their output (never read) stays finite."""
        self.mask[rows:].fill_(self.masked)
        self.mask[rows:, 0, 0, 0] = 0.0
        self.positions[rows:] = 0


class StepGraph:
    """One shape: the leading ``slots`` rows of the buffers and, on CUDA, the step captured over them."""

    WARMUP_STEPS = 2  # eager steps before capture, so lazy initialization happens outside the graph

    def __init__(self, model, buffers: Buffers, slots: int):
        from transformers import AttentionInterface

        AttentionInterface.register(GROUPED_DECODE, grouped_decode_attention)
        self.model, self.buffers, self.slots = model, buffers, slots
        self.cache = FixedCache([k[:slots] for k in buffers.keys], [v[:slots] for v in buffers.values],
                                buffers.column)
        self.tokens, self.positions, self.mask = buffers.tokens[:slots], buffers.positions[:slots], buffers.mask[:slots]
        self.graph = None
        if buffers.device.type == "cuda":
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

    def warm_up(self) -> None:
        """Run the step for real ``WARMUP_STEPS`` times, putting the column, positions and mask back after each.
        The buffers may hold live rows: every run writes the KV of the same column, the next one to be written
        (not yet attended, and overwritten by the next step before it is read), so nothing live changes and no run
        writes past the last column, however few steps the call has left."""
        saved = self.cache.column.clone(), self.positions.clone(), self.mask.clone()
        for _ in range(self.WARMUP_STEPS):
            self._step()
            for tensor, value in zip((self.cache.column, self.positions, self.mask), saved):
                tensor.copy_(value)

    def _capture(self) -> None:
        """Warm up, then capture on the model's device (a capture records the step's kernels; it runs none)."""
        import torch

        device = self.buffers.device
        with torch.cuda.device(device):
            stream = torch.cuda.Stream(device)
            stream.wait_stream(torch.cuda.current_stream(device))
            with torch.cuda.stream(stream):
                self.warm_up()
            torch.cuda.current_stream(device).wait_stream(stream)
            self.graph = torch.cuda.CUDAGraph()
            with torch.cuda.graph(self.graph, pool=self.buffers.pool, stream=torch.cuda.Stream(device)):
                self.logits = self._step()

    def run(self):
        """Logits of every slot for the tokens in ``self.tokens``."""
        if self.graph is None:
            return self._step()
        import torch

        with torch.cuda.device(self.buffers.device):
            self.graph.replay()
        return self.logits


class StaticDecoder:
    """The fixed-shape steps of one model: one set of buffers, for the latest cache length, and a step per shape."""

    def __init__(self, model):
        check_supported(model.config)
        self.model = model
        self.buffers: Buffers | None = None
        self.graphs: dict[int, StepGraph] = {}  # slots -> step over the leading slots of the buffers

    def clear(self) -> None:
        self.graphs.clear()
        self.buffers = None

    def graph(self, slots: int) -> StepGraph:
        if slots not in self.graphs:
            self.graphs[slots] = StepGraph(self.model, self.buffers, slots)
        return self.graphs[slots]

    def start(self, rows: int, columns: int, steps: int) -> "StaticDecode":
        """The decode of ``rows`` rows of ``columns`` prefilled columns (placed next) and up to ``steps`` more."""
        slots, length = slots_for(rows), columns_for(columns + steps)
        if self.buffers is None or self.buffers.length != length or self.buffers.capacity < slots:
            self.clear()  # before allocating, so the old buffers are free
            self.buffers = Buffers(self.model, slots, length)
        self.buffers.reset(rows, columns)
        return StaticDecode(self, self.graph(slots), rows)


class StaticDecode:
    """One call's decode in fixed shapes: the live rows and the slots they hold."""

    def __init__(self, decoder: StaticDecoder, graph: StepGraph, rows: int):
        import torch

        self.decoder, self.graph = decoder, graph
        self.slots = torch.arange(rows, device=graph.tokens.device)

    def place(self, cache, mask, rows, sources) -> None:
        self.decoder.buffers.place(cache, mask, rows, sources)

    def advance(self, chosen, keep=None):
        """Feed each live row its chosen token (``keep``: the positions of the rows still live, when some ended);
        returns the next logits of the live rows."""
        import torch

        if keep is not None:
            self.slots = self.slots[keep]
            smaller = slots_for(len(self.slots))
            if len(self.slots) <= self.graph.slots // 2 and smaller < self.graph.slots:
                self.graph = self.decoder.graph(smaller)
                self.decoder.buffers.gather(self.slots)
                self.slots = torch.arange(len(self.slots), device=self.slots.device)
        self.graph.tokens.index_copy_(0, self.slots, chosen[:, None])
        return self.graph.run()[self.slots]
