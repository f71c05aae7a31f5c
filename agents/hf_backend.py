"""The transformers backend: batched sampling with a KV cache, on CPU or one GPU.

Prefix reuse (``prefix_reuse``, on by default): identical prompts in one call are prefilled once and their cache
rows shared (the ``n`` samples of a request, or the same context asked for twice), and every prompt's KV is kept
in a ``PrefixCache``, so a later prompt that starts with the same tokens (the next turn of a transcript, the next
prefix of a trace being scored) prefills only what follows. Sampling draws from per-row seeded generators, so a
seeded request gives the same tokens whatever else is in the batch.

Decoding after the prefill takes one of two paths (``decode``): ``dynamic`` grows transformers' cache and drops
finished rows at once, so a long straggler does not carry the rest; ``static`` runs fixed shapes replayed as CUDA
graphs on a GPU (``static_decode``), for long decodes of large models where eager steps are launch-bound.
"""
from __future__ import annotations

import re
import time
from collections import OrderedDict
from pathlib import Path
from typing import Sequence

from longshort.agents.static_decode import StaticDecoder
from longshort.agents.backend import Completion, GenerationRequest, GenerationResult, check_fits
from longshort.config import ModelConfig


class ModelLoadError(OSError):
    """A model or tokenizer that cannot be loaded, with the agent and path named."""


def load_tokenizer(path: str, trust_remote_code: bool = False, agent: str = "model"):
    from transformers import AutoTokenizer

    check_model_path(path, f"model path of {agent}")
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load the tokenizer of {agent} from '{path}': {e}") from None


# A Hugging Face hub repository id: one "owner/name", no leading dot or slash.
HUB_NAME = re.compile(r"[A-Za-z0-9][\w.-]*/[\w.-]+")


def check_model_path(path: str, where: str) -> None:
    """A model is a local folder, or a hub name that can be had: cached, or the hub reachable. Anything else is an
    error naming ``where`` (the config file and key), at once, instead of a download attempt that times out."""
    if Path(path).expanduser().is_dir():
        return
    if not HUB_NAME.fullmatch(path) or Path(path).expanduser().exists():
        raise ModelLoadError(f"{where}: no model folder at '{path}'")
    if not (_hub_cached(path) or _hub_reachable()):
        raise ModelLoadError(f"{where}: '{path}' is not a local folder, and the Hugging Face hub cannot be reached to "
                             "download it (offline?): give the path of a model folder")


def _hub_cached(name: str) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(name, "config.json"), str)


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the hub's host answers a TCP connection within ``timeout`` seconds (never with HF_HUB_OFFLINE set)."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes", "on"):
        return False
    endpoint = urlparse(os.environ.get("HF_ENDPOINT") or "https://huggingface.co")
    try:
        socket.create_connection((endpoint.hostname, endpoint.port or 443), timeout=timeout).close()
    except OSError:
        return False
    return True


def _dtype(name: str):
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


class PrefixCache:
    """The KV of prompts already prefilled, one entry per prompt, least recently used out first.

    ``lookup`` finds the entry sharing the longest prefix with a prompt: the KV of a position depends only on the
    tokens up to it, so a shared prefix is valid however the two sequences go on. Entries are indexed by a hash
    chain over blocks of ``BLOCK`` tokens, so a lookup costs one pass over the prompt, not one per entry. Bounded by
    ``max_tokens`` positions.
    """

    BLOCK = 16

    def __init__(self, max_tokens: int):
        self.max_tokens = max_tokens
        self.entries: OrderedDict[tuple[int, ...], tuple] = OrderedDict()  # ids -> (ids array, [(keys, values)])
        self.blocks: dict[int, tuple[int, ...]] = {}  # chain hash of a block-aligned prefix -> an entry holding it
        self.tokens = 0

    def _chain(self, ids: tuple[int, ...]) -> list[int]:
        """Hash of ids[:BLOCK], ids[:2 BLOCK], ...: each block's hash folds in the one before."""
        hashes, h = [], 0
        for end in range(self.BLOCK, len(ids) + 1, self.BLOCK):
            h = hash((h, ids[end - self.BLOCK : end]))
            hashes.append(h)
        return hashes

    def lookup(self, prompt: tuple[int, ...]):
        """``(length, per-layer (keys, values))`` of the longest cached prefix, leaving at least the last token of
        ``prompt`` to compute (its logits start generation); ``(0, None)`` when no whole block is shared."""
        import numpy as np

        limit = len(prompt) - 1
        chain = self._chain(prompt[:limit])
        for blocks in range(len(chain), 0, -1):
            key = self.blocks.get(chain[blocks - 1])
            if key is None:
                continue
            ids, wanted, aligned = self.entries[key][0], np.asarray(prompt), blocks * self.BLOCK
            n = min(len(ids), limit)
            if not np.array_equal(ids[:aligned], wanted[:aligned]):
                continue  # a hash collision
            differ = np.flatnonzero(ids[aligned:n] != wanted[aligned:n])
            common = aligned + (int(differ[0]) if len(differ) else n - aligned)
            self.entries.move_to_end(key)
            return common, [(k[:, :common], v[:, :common]) for k, v in self.entries[key][1]]
        return 0, None

    def wants(self, ids: tuple[int, ...]) -> bool:
        """Whether ``add`` would keep ``ids``: ask first, so the KV is not gathered for nothing."""
        return len(ids) <= self.max_tokens and ids not in self.entries

    def add(self, ids: tuple[int, ...], layers) -> None:
        """Keep ``layers`` (per layer, keys and values of shape [heads, len(ids), head dim]) for ``ids``."""
        import numpy as np

        if not self.wants(ids):
            return
        chain = self._chain(ids)
        for h in chain:  # an entry that is a prefix of the new one adds nothing
            key = self.blocks.get(h)
            if key is not None and len(key) < len(ids) and ids[: len(key)] == key:
                self._drop(key)
        while self.tokens + len(ids) > self.max_tokens:
            self._drop(next(iter(self.entries)))
        self.entries[ids] = (np.asarray(ids), layers)
        self.blocks.update(dict.fromkeys(chain, ids))
        self.tokens += len(ids)

    def _drop(self, key) -> None:
        del self.entries[key]
        self.tokens -= len(key)
        for h in self._chain(key):
            if self.blocks.get(h) == key:
                del self.blocks[h]


class HFBackend:
    def __init__(self, config: ModelConfig, name: str, model=None):
        """The model and tokenizer at ``config.path``; or ``model``, already built (random weights of a real
        architecture, for throughput runs), with no tokenizer and so no EOS: generation stops only on request."""
        import torch
        from transformers import AutoModelForCausalLM

        self.name = name
        self.config = config
        self.device = torch.device(config.device)
        self.tokenizer = None if model is not None else load_tokenizer(config.path, config.trust_remote_code, name)
        if model is None:
            try:
                model = AutoModelForCausalLM.from_pretrained(
                    config.path, dtype=_dtype(config.dtype), trust_remote_code=config.trust_remote_code
                )
            except (OSError, ValueError) as e:
                raise ModelLoadError(f"cannot load the model of {name} from '{config.path}': {e}") from None
        self.model = model.to(self.device).eval()
        self.max_context = config.max_context or self.model.config.max_position_embeddings
        self.eos_token_id = self.tokenizer.eos_token_id if self.tokenizer else None
        pad = self.tokenizer.pad_token_id if self.tokenizer else None
        self.pad_token_id = pad if pad is not None else 0
        self.prefix_cache = PrefixCache(config.prefix_cache_tokens) if config.prefix_reuse else None
        self.static_decoder = StaticDecoder(self.model) if config.decode == "static" else None

    def weights_changed(self) -> None:
        """A trainer updated ``self.model``: the cached KV was computed by the old weights, and captured steps may
        point at replaced tensors."""
        if self.prefix_cache is not None:
            self.prefix_cache = PrefixCache(self.config.prefix_cache_tokens)
        if self.static_decoder is not None:
            self.static_decoder.clear()

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        start = time.perf_counter()
        rows = [(i, j) for i, r in enumerate(requests) for j in range(r.n)]
        budgets = [check_fits(r, self.max_context, self.name) for r in requests]
        outputs: dict[tuple[int, int], Completion] = {}
        prefill = [0] * len(requests)
        size = self.config.max_batch_size
        for lo in range(0, len(rows), size):
            done, computed = self._generate_rows(requests, budgets, rows[lo : lo + size])
            outputs.update(done)
            for i, count in computed.items():
                prefill[i] += count
        seconds = time.perf_counter() - start
        return [
            GenerationResult(
                completions=[outputs[(i, j)] for j in range(r.n)],
                prompt_tokens=len(r.prompt_ids),
                prefill_tokens=prefill[i],
                seconds=seconds,
            )
            for i, r in enumerate(requests)
        ]

    def _generate_rows(self, requests, budgets, rows):
        """Decode one micro-batch of (request, sample) rows; returns their completions and prefill tokens."""
        import torch

        dev = self.device
        if self.prefix_cache is None:  # every row encodes its own prompt
            keys = [(requests[i].prompt_ids, n) for n, (i, _) in enumerate(rows)]
        else:
            keys = [(requests[i].prompt_ids, 0) for i, _ in rows]
        prompts = sorted(set(keys), key=lambda key: len(key[0]))
        prompt_index = {p: k for k, p in enumerate(prompts)}
        limit = [budgets[i] for i, _ in rows]
        with torch.inference_mode():
            row_prompts = [prompt_index[key] for key in keys]
            logits, decode, computed = self._prefill([p for p, _ in prompts], row_prompts, max(limit) - 1)
            logits = logits[torch.tensor(row_prompts, device=dev)]

            reqs = [requests[i] for i, _ in rows]
            temperature = torch.tensor([r.temperature for r in reqs], device=dev)
            top_p = torch.tensor([r.top_p for r in reqs], device=dev)
            uniforms = torch.stack([self._uniforms(r, j, max(limit)) for r, (_, j) in zip(reqs, rows)]).to(dev)
            stops = [set(r.stop_token_ids) | ({self.eos_token_id} if self.eos_token_id is not None else set())
                     for r in reqs]

            tokens: list[list[int]] = [[] for _ in rows]
            logps: list[list[float]] = [[] for _ in rows]
            reasons: list[str | None] = [None] * len(rows)
            active = list(range(len(rows)))  # row numbers still decoding, in cache order
            greedy = all(r.temperature == 0 for r in reqs)
            want_logps = any(r.logprobs for r in reqs)
            step = 0
            while active:
                chosen = logits.argmax(-1) if greedy else _sample(logits, temperature, top_p, uniforms[:, step])
                # one transfer per step for the whole batch, not one per row
                chosen_ids = chosen.tolist()
                if want_logps:
                    chosen_logp = logits.gather(-1, chosen[:, None])[:, 0] - torch.logsumexp(logits, dim=-1)
                    chosen_logps = chosen_logp.tolist()
                keep = []
                for pos, row in enumerate(active):
                    token = chosen_ids[pos]
                    tokens[row].append(token)
                    if want_logps:
                        logps[row].append(chosen_logps[pos])
                    if token in stops[row]:
                        reasons[row] = "stop"
                    elif len(tokens[row]) >= limit[row]:
                        reasons[row] = "length"
                    else:
                        keep.append(pos)
                step += 1
                if not keep:
                    break
                index = None
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=dev)
                    chosen = chosen[index]
                    temperature, top_p, uniforms = temperature[index], top_p[index], uniforms[index]
                    active = [active[pos] for pos in keep]
                logits = decode.advance(chosen, index)

        done = {
            key: Completion(tokens[n], logps[n] if reqs[n].logprobs else None, reasons[n])
            for n, key in enumerate(rows)
        }
        first_row = {}
        for key, (i, _) in zip(keys, rows):
            first_row.setdefault(key, i)
        prefill = {}
        for key, count in zip(prompts, computed):
            prefill[first_row[key]] = prefill.get(first_row[key], 0) + count
        return done, prefill

    def _prefill(self, prompts: list[tuple[int, ...]], row_prompts: list[int], steps: int):
        """Run the prompts' uncached tokens, in groups of at most ``max_prefill_tokens``; returns each prompt's
        next-token logits, the decode that continues the rows (row ``r`` starts from prompt ``row_prompts[r]``;
        None when no row needs another step) and the tokens computed per prompt.

        Row layout of a group: the cached prefix's KV right-aligned in the past columns, then the rest of the prompt
        right-aligned in the new columns, so every row's next token sits in the last column; each group goes into
        the decode's cache right-aligned as it is computed, so only one group's KV is held twice.
        """
        import torch

        hits = [self.prefix_cache.lookup(p) if self.prefix_cache else (0, None) for p in prompts]
        groups = self._groups([len(p) - n for p, (n, _) in zip(prompts, hits)])
        columns = max(max(hits[k][0] for k in g) + max(len(prompts[k]) - hits[k][0] for k in g) for g in groups)
        decode = self._start_decode(len(row_prompts), columns, steps) if steps > 0 else None
        rows_of = {}
        for row, k in enumerate(row_prompts):
            rows_of.setdefault(k, []).append(row)
        logits = []
        for group in groups:
            out, cache, mask = self._prefill_group([prompts[k] for k in group], [hits[k] for k in group])
            logits.append(out.logits[:, -1, :].float())
            if decode is not None:
                pairs = [(row, g) for g, k in enumerate(group) for row in rows_of[k]]
                rows, sources = (torch.tensor(x, device=self.device) for x in zip(*pairs))
                decode.place(cache, mask, rows, sources)
            del out, cache
        return torch.cat(logits), decode, [len(p) - n for p, (n, _) in zip(prompts, hits)]

    def _groups(self, rests: list[int]) -> list[list[int]]:
        """Consecutive prompts whose padded uncached tokens (rows × longest rest) fit ``max_prefill_tokens``; a
        prompt longer than that goes alone."""
        groups, widest = [[]], 0
        for k, rest in enumerate(rests):
            if groups[-1] and (len(groups[-1]) + 1) * max(widest, rest) > self.config.max_prefill_tokens:
                groups.append([])
                widest = 0
            groups[-1].append(k)
            widest = max(widest, rest)
        return groups

    def _prefill_group(self, prompts, hits):
        """One forward over ``prompts``' uncached tokens; returns the output, the cache and the 2D attention mask."""
        import torch
        from transformers import DynamicCache

        dev = self.device
        past = max(n for n, _ in hits)
        rests = [p[n:] for p, (n, _) in zip(prompts, hits)]
        width = max(len(r) for r in rests)
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), past + width), dtype=torch.long)
        positions = torch.zeros((len(prompts), width), dtype=torch.long)
        for k, (rest, (n, _)) in enumerate(zip(rests, hits)):
            ids[k, width - len(rest) :] = torch.tensor(rest)
            mask[k, past - n : past] = 1
            mask[k, past + width - len(rest) :] = 1
            positions[k, width - len(rest) :] = torch.arange(n, n + len(rest))
        cache = DynamicCache(config=self.model.config)
        if past:
            sample = next(layers for n, layers in hits if n)
            for layer, (keys, values) in enumerate(sample):
                shape = (len(prompts), keys.shape[0], past, keys.shape[2])
                all_keys, all_values = keys.new_zeros(shape), values.new_zeros(shape)
                for k, (n, layers) in enumerate(hits):
                    if n:
                        all_keys[k, :, past - n :], all_values[k, :, past - n :] = layers[layer]
                cache.update(all_keys, all_values, layer)
        mask = mask.to(dev)
        out = self.model(input_ids=ids.to(dev), attention_mask=mask, position_ids=positions.to(dev),
                         past_key_values=cache, use_cache=True, logits_to_keep=1)
        if self.prefix_cache is not None:
            for k, prompt in enumerate(prompts):
                if not self.prefix_cache.wants(prompt):
                    continue
                where = mask[k].nonzero()[:, 0]
                self.prefix_cache.add(prompt, [(layer.keys[k][:, where], layer.values[k][:, where])
                                               for layer in cache.layers])
        return out, cache, mask

    def _start_decode(self, rows: int, columns: int, steps: int):
        """The decode of ``rows`` rows of ``columns`` prefilled columns and up to ``steps`` more: in transformers'
        growing cache, or in fixed shapes (``decode: static``)."""
        if self.static_decoder is not None:
            return self.static_decoder.start(rows, columns, steps)
        return DynamicDecode(self.model, rows, columns)

    def _uniforms(self, request: GenerationRequest, sample: int, count: int):
        """The random draws of one sample, from its own seeded stream (seed + sample index)."""
        import torch

        generator = torch.Generator()
        if request.seed is None:
            generator.seed()
        else:
            generator.manual_seed(request.seed + sample)
        return torch.rand(count, generator=generator, dtype=torch.float64)


class DynamicDecode:
    """Decode steps in transformers' growing cache; rows that end leave the batch at once."""

    def __init__(self, model, rows: int, columns: int):
        import torch
        from transformers import DynamicCache

        self.model, self.rows, self.columns = model, rows, columns
        self.cache = DynamicCache(config=model.config)
        self.mask = torch.zeros((rows, columns), dtype=torch.long, device=model.device)

    def place(self, cache, mask, rows, sources) -> None:
        """Put rows ``sources`` of a prefilled group (its cache and 2D mask) at rows ``rows``, right-aligned."""
        for layer, group in enumerate(cache.layers):
            if not self.cache.layers[layer].is_initialized:  # the first group gives the layer's shape
                shape = (self.rows, group.keys.shape[1], self.columns, group.keys.shape[3])
                self.cache.update(group.keys.new_zeros(shape), group.values.new_zeros(shape), layer)
            mine = self.cache.layers[layer]
            for target, source in ((mine.keys, group.keys), (mine.values, group.values)):
                # a sliding-window layer keeps only its latest columns: align on the last column, not the first
                width = min(target.shape[2], source.shape[2])
                target[rows, :, target.shape[2] - width :] = source[sources][:, :, source.shape[2] - width :]
        self.mask[rows, self.columns - mask.shape[1] :] = mask[sources]

    def advance(self, chosen, keep=None):
        """Feed each live row its chosen token (``keep``: the positions of the rows still live, when some ended);
        returns the next logits of the live rows."""
        import torch

        if keep is not None:
            self.cache.batch_select_indices(keep)
            self.mask = self.mask[keep]
        self.mask = torch.cat([self.mask, self.mask.new_ones((len(self.mask), 1))], dim=1)
        out = self.model(input_ids=chosen[:, None], attention_mask=self.mask,
                         position_ids=self.mask.sum(-1, keepdim=True) - 1, past_key_values=self.cache, use_cache=True)
        return out.logits[:, -1, :].float()


def _sample(logits, temperature, top_p, uniform):
    """Greedy where temperature is 0, else nucleus sampling by inverse CDF on one uniform draw per row."""
    import torch

    greedy = logits.argmax(-1)
    scaled = logits / temperature.clamp(min=1e-6)[:, None]
    probs, order = torch.softmax(scaled, dim=-1, dtype=torch.float64).sort(dim=-1, descending=True)
    cumulative = probs.cumsum(-1)
    probs = probs.masked_fill(cumulative - probs >= top_p[:, None].double(), 0.0)
    cdf = probs.cumsum(-1)
    pick = torch.searchsorted(cdf, (uniform * cdf[:, -1])[:, None].contiguous(), right=True).clamp(max=cdf.shape[-1] - 1)
    sampled = order.gather(-1, pick)[:, 0]
    return torch.where(temperature == 0, greedy, sampled)
