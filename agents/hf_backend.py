"""The transformers backend: batched sampling with a KV cache, on CPU or one GPU.

Identical prompts in one call are prefilled once and their cache rows shared (the ``n`` samples of a request, or
the same context asked for twice), and finished rows leave the batch, so a long straggler does not carry the
rest. Sampling draws from per-row seeded generators, so a seeded request gives the same tokens whatever else is
in the batch.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Sequence

from longshort.agents.backend import Completion, GenerationRequest, GenerationResult, check_fits
from longshort.config import ModelConfig


class ModelLoadError(OSError):
    """A model or tokenizer that cannot be loaded, with the agent and path named."""


def load_tokenizer(path: str, trust_remote_code: bool = False, agent: str = "model"):
    from transformers import AutoTokenizer

    _check_local_path(path, agent)
    try:
        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)
    except (OSError, ValueError) as e:
        raise ModelLoadError(f"cannot load the tokenizer of {agent} from '{path}': {e}") from None


def _check_local_path(path: str, agent: str) -> None:
    looks_local = path.startswith((".", "/", "~")) or Path(path).exists()
    if looks_local and not Path(path).expanduser().is_dir():
        raise ModelLoadError(f"model path of {agent} does not exist: {path}")


def _dtype(name: str):
    import torch

    return "auto" if name == "auto" else getattr(torch, name)


class HFBackend:
    def __init__(self, config: ModelConfig, name: str):
        import torch
        from transformers import AutoModelForCausalLM

        self.name = name
        self.config = config
        self.device = torch.device(config.device)
        self.tokenizer = load_tokenizer(config.path, config.trust_remote_code, name)
        try:
            self.model = AutoModelForCausalLM.from_pretrained(
                config.path, dtype=_dtype(config.dtype), trust_remote_code=config.trust_remote_code
            )
        except (OSError, ValueError) as e:
            raise ModelLoadError(f"cannot load the model of {name} from '{config.path}': {e}") from None
        self.model.to(self.device).eval()
        self.max_context = config.max_context or self.model.config.max_position_embeddings
        self.eos_token_id = self.tokenizer.eos_token_id
        self.pad_token_id = self.tokenizer.pad_token_id if self.tokenizer.pad_token_id is not None else 0

    def generate(self, requests: Sequence[GenerationRequest]) -> list[GenerationResult]:
        start = time.perf_counter()
        rows = [(i, j) for i, r in enumerate(requests) for j in range(r.n)]
        budgets = [check_fits(r, self.max_context, self.name) for r in requests]
        outputs: dict[tuple[int, int], Completion] = {}
        prefill = 0
        size = self.config.max_batch_size
        for lo in range(0, len(rows), size):
            done, computed = self._generate_rows(requests, budgets, rows[lo : lo + size])
            outputs.update(done)
            prefill += computed
        seconds = time.perf_counter() - start
        return [
            GenerationResult(
                completions=[outputs[(i, j)] for j in range(r.n)],
                prompt_tokens=len(r.prompt_ids),
                seconds=seconds,
                meta={"prefill_tokens": prefill, "batch_rows": len(rows)},
            )
            for i, r in enumerate(requests)
        ]

    def _generate_rows(self, requests, budgets, rows):
        """Decode one micro-batch of (request, sample) rows; returns their completions and prefill tokens."""
        import torch
        from transformers import DynamicCache

        dev = self.device
        prompts = sorted({requests[i].prompt_ids for i, _ in rows}, key=len)
        prompt_index = {p: k for k, p in enumerate(prompts)}
        width = len(prompts[-1])
        ids = torch.full((len(prompts), width), self.pad_token_id, dtype=torch.long)
        mask = torch.zeros((len(prompts), width), dtype=torch.long)
        for k, p in enumerate(prompts):  # left padding: every row's next token sits at the same column
            ids[k, width - len(p) :] = torch.tensor(p)
            mask[k, width - len(p) :] = 1
        ids, mask = ids.to(dev), mask.to(dev)
        cache = DynamicCache(config=self.model.config)
        with torch.inference_mode():
            out = self.model(
                input_ids=ids,
                attention_mask=mask,
                position_ids=(mask.cumsum(-1) - 1).clamp(min=0),
                past_key_values=cache,
                use_cache=True,
                logits_to_keep=1,
            )
            select = torch.tensor([prompt_index[requests[i].prompt_ids] for i, _ in rows], device=dev)
            cache.batch_select_indices(select)
            logits = out.logits[select, -1, :].float()
            mask = mask[select]

            reqs = [requests[i] for i, _ in rows]
            temperature = torch.tensor([r.temperature for r in reqs], device=dev)
            top_p = torch.tensor([r.top_p for r in reqs], device=dev)
            limit = [budgets[i] for i, _ in rows]
            uniforms = torch.stack([self._uniforms(r, j, max(limit)) for r, (_, j) in zip(reqs, rows)]).to(dev)
            stops = [set(r.stop_token_ids) | ({self.eos_token_id} if self.eos_token_id is not None else set())
                     for r in reqs]

            tokens: list[list[int]] = [[] for _ in rows]
            logps: list[list[float]] = [[] for _ in rows]
            reasons: list[str | None] = [None] * len(rows)
            active = list(range(len(rows)))  # row numbers still decoding, in cache order
            step = 0
            while active:
                logp = torch.log_softmax(logits, dim=-1)
                chosen = _sample(logits, temperature, top_p, uniforms[:, step])
                chosen_logp = logp.gather(-1, chosen[:, None])[:, 0]
                keep = []
                for pos, row in enumerate(active):
                    token = int(chosen[pos])
                    tokens[row].append(token)
                    logps[row].append(float(chosen_logp[pos]))
                    if token in stops[row]:
                        reasons[row] = "stop"
                    elif len(tokens[row]) >= limit[row]:
                        reasons[row] = "length"
                    else:
                        keep.append(pos)
                step += 1
                if not keep:
                    break
                if len(keep) < len(active):
                    index = torch.tensor(keep, device=dev)
                    cache.batch_select_indices(index)
                    mask, chosen = mask[index], chosen[index]
                    temperature, top_p, uniforms = temperature[index], top_p[index], uniforms[index]
                    active = [active[pos] for pos in keep]
                mask = torch.cat([mask, mask.new_ones((len(active), 1))], dim=1)
                out = self.model(
                    input_ids=chosen[:, None],
                    attention_mask=mask,
                    position_ids=(mask.sum(-1, keepdim=True) - 1),
                    past_key_values=cache,
                    use_cache=True,
                )
                logits = out.logits[:, -1, :].float()

        done = {
            key: Completion(tokens[n], logps[n] if reqs[n].logprobs else None, reasons[n])
            for n, key in enumerate(rows)
        }
        return done, sum(len(p) for p in prompts)

    def _uniforms(self, request: GenerationRequest, sample: int, count: int):
        """The random draws of one sample, from its own seeded stream (seed + sample index)."""
        import torch

        generator = torch.Generator()
        if request.seed is None:
            generator.seed()
        else:
            generator.manual_seed(request.seed + sample)
        return torch.rand(count, generator=generator, dtype=torch.float64)


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
