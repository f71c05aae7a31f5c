"""Throughput of unfolded vs folded memory at a fixed KV-memory budget, through HFBackend.

    python eval/bench_throughput.py --shape qwen2.5-7b --device cuda --kv-budget-gb 48 \\
        --problems 512 --prompt 256 --reasoning 16384 --segment 2048 --summary 256
    python eval/bench_throughput.py --shape tiny            # CPU, seconds: checks the accounting

Every mode generates the same reasoning: ``problems`` sequences of ``reasoning`` tokens after a ``prompt``-token
prompt, at forced lengths (no stop tokens), so only memory differs. Folded modes write it in segments of
``segment`` tokens; each segment but the last is followed, in the same decode, by a ``summary``-token summary, and
the next segment restarts from the prompt plus the latest summary (fold-restart) or every summary so far
(fold-append), prefilled again. A sequence's peak context is therefore

    unfold        prompt + reasoning
    fold-restart  prompt + summary + segment + summary            (a segment that ends in a summary)
    fold-append   prompt + (k - 1) summary + segment (+ summary)      (segment k of k; the largest over k)

and a mode's concurrency is the most sequences whose peak KV fits the budget (KV bytes per token = 2 × layers ×
KV heads × head dim × bytes per value). Each mode then runs all problems in waves of that many sequences, and the
report gives reasoning tokens per second (summaries and re-prefills inside the time), all generated tokens per
second, prompt tokens prefilled, peak memory, and each mode's ratio to unfold, all from one run. Weights are
random (throughput does not depend on them); ``--model PATH`` measures a checkpoint instead. Prefix reuse is off,
so every re-prefill after a fold is paid in full. ``--decode`` picks HFBackend's decode paths (``dynamic``: the
growing transformers cache; ``static``: fixed shapes replayed as CUDA graphs), each run in turn on the same model.

``--orchestrator`` instead measures the orchestrator's own share of wall time: the whole solve (router, memory
rendering, turn bookkeeping) of ``problems`` transcripts under each memory mode, with both agents hosted in this
process over the random model and ``--config``'s tokenizer and protocol tags (the tiny world's by default). The
alternate router gives each agent half the ``reasoning`` in turns of ``chunk`` tokens; folded modes summarize
every ``segment`` think tokens in ``summary`` tokens. The model is kept from writing tags and ids the tokenizer
lacks, so every turn runs to its full length, as in a forced-length workload. Prefix reuse is on, with a cache
that holds every transcript's context. The share is what is left of the solve's wall time after the backend calls.

``--decode-grid`` instead times HFBackend's decode step for batch × context pairs and compares it with the
bandwidth floor: (weight bytes + batch × context × KV bytes per token) / the device's measured copy bandwidth;
with both decode paths, each cell also gives the static path's speedup. Results are written to ``--output`` as
each row or cell finishes.
"""
from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections import Counter
from pathlib import Path

MODES = ("unfold", "fold-restart", "fold-append")
DECODES = ("dynamic", "static")

# Qwen2 shapes (config.json of the released checkpoints), and a tiny one for CPU runs.
SHAPES = {
    "qwen2.5-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                       num_key_value_heads=4, vocab_size=152064, max_position_embeddings=32768),
    "qwen2.5-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                         num_key_value_heads=2, vocab_size=151936, max_position_embeddings=32768),
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512, max_position_embeddings=32768),
}


def build_model(shape: str | None, path: str | None, dtype: str, device: str):
    """Random weights of a named shape built on the device, or a checkpoint."""
    import torch
    from transformers import AutoModelForCausalLM, Qwen2Config

    torch_dtype = getattr(torch, dtype)
    if path:
        return AutoModelForCausalLM.from_pretrained(path, dtype=torch_dtype)
    config = Qwen2Config(**SHAPES[shape], tie_word_embeddings=False)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    return model


def hosted(model, args, max_batch: int, decode: str, prefix_cache_tokens: int | None = None):
    """HFBackend over ``model`` with the given decode path; prefix reuse off unless a prefix cache size is given."""
    from longshort.agents.hf_backend import HFBackend
    from longshort.config import ModelConfig

    reuse = {"prefix_reuse": False} if prefix_cache_tokens is None else {"prefix_cache_tokens": prefix_cache_tokens}
    config = ModelConfig(path=args.model or args.shape, device=args.device, dtype=args.dtype,
                         max_batch_size=max_batch, decode=decode, **reuse)
    return HFBackend(config, "bench", model=model)


def weight_bytes(model) -> int:
    return sum(p.numel() * p.element_size() for p in model.parameters())


def kv_bytes_per_token(model) -> int:
    config = model.config
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
    value_bytes = next(model.parameters()).element_size()
    return 2 * config.num_hidden_layers * config.num_key_value_heads * head_dim * value_bytes


def segments(reasoning: int, segment: int) -> list[int]:
    """The reasoning's segment lengths: full segments, then what is left."""
    return [min(segment, reasoning - start) for start in range(0, reasoning, segment)]


def peak_context(mode: str, prompt: int, reasoning: int, segment: int, summary: int) -> int:
    if mode == "unfold":
        return prompt + reasoning
    parts = segments(reasoning, segment)
    # the context while writing segment k (from 0) and, unless it is the last, its summary
    peaks = [prompt + (k if mode == "fold-append" else min(k, 1)) * summary + length
             + (summary if k + 1 < len(parts) else 0) for k, length in enumerate(parts)]
    return max(peaks)


def concurrency(mode: str, args, kv_bytes: int) -> int:
    fits = int(args.kv_budget_gb * 2**30 // (peak_context(mode, args.prompt, args.reasoning, args.segment,
                                                           args.summary) * kv_bytes))
    if fits < 1:
        raise ValueError(f"{mode}: one sequence's peak KV does not fit {args.kv_budget_gb} GiB")
    return min(fits, args.problems, args.max_concurrency or args.problems)


def run_mode(backend, mode: str, args, width: int, seed: int) -> dict:
    """All problems in waves of ``width`` sequences; returns the mode's counters and timings."""
    import random

    import torch

    from longshort.agents.backend import GenerationRequest

    rng = random.Random(seed)
    vocab = backend.model.config.vocab_size
    counts = {"generated": 0, "reasoning": 0, "prefill": 0, "calls": 0}
    if backend.device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    start = time.perf_counter()
    for wave_start in range(0, args.problems, width):
        wave = min(width, args.problems - wave_start)
        contexts = [[rng.randrange(vocab) for _ in range(args.prompt)] for _ in range(wave)]
        prompts = [list(c) for c in contexts]
        summaries: list[list[list[int]]] = [[] for _ in range(wave)]
        parts = [args.reasoning] if mode == "unfold" else segments(args.reasoning, args.segment)
        for k, length in enumerate(parts):
            summarize = k + 1 < len(parts)
            new = length + (args.summary if summarize else 0)
            requests = [GenerationRequest(c, new, (), temperature=1.0, seed=rng.randrange(2**31), logprobs=False)
                        for c in contexts]
            results = backend.generate(requests)
            counts["calls"] += 1
            for i, result in enumerate(results):
                tokens = result.completions[0].token_ids
                if len(tokens) != new:
                    raise RuntimeError(f"{mode}: a forced generation of {new} tokens stopped at {len(tokens)}")
                counts["generated"] += new
                counts["reasoning"] += length
                counts["prefill"] += result.prefill_tokens
                if summarize:
                    summaries[i].append(tokens[-args.summary:])
                    kept = summaries[i] if mode == "fold-append" else summaries[i][-1:]
                    contexts[i] = prompts[i] + [t for s in kept for t in s]
    if backend.device.type == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() if backend.device.type == "cuda" else None
    return {**counts, "seconds": round(seconds, 4), "peak_memory_bytes": peak}


def throughput(args) -> dict:
    """Each decode path × each memory mode on one model; rows written to ``--output`` as they finish."""
    model = build_model(args.shape, args.model, args.dtype, args.device)
    kv_bytes = kv_bytes_per_token(model)
    result = {"kind": "throughput", "workload": workload(args), "kv_bytes_per_token": kv_bytes,
              "weight_bytes": weight_bytes(model), "device": device_name(args.device), "rows": []}
    for decode in args.decode:
        backend = hosted(model, args, args.problems, decode)
        rows = {}
        for mode in args.modes:
            width = concurrency(mode, args, kv_bytes)
            print(f"{decode} decode, {mode}: concurrency {width}", file=sys.stderr)
            measured = run_mode(backend, mode, args, width, args.seed)
            peak = peak_context(mode, args.prompt, args.reasoning, args.segment, args.summary)
            rows[mode] = {
                "decode": decode,
                "mode": mode,
                "concurrency": width,
                "peak_context": peak,
                "planned_kv_bytes": width * peak * kv_bytes,
                **measured,
                "reasoning_tok_s": round(measured["reasoning"] / measured["seconds"], 2),
                "generated_tok_s": round(measured["generated"] / measured["seconds"], 2),
            }
            if "unfold" in rows:
                for row in rows.values():
                    row["speedup_vs_unfold"] = round(row["reasoning_tok_s"] / rows["unfold"]["reasoning_tok_s"], 3)
                    row["concurrency_vs_unfold"] = round(row["concurrency"] / rows["unfold"]["concurrency"], 3)
            save(args, {**result, "rows": result["rows"] + list(rows.values())})
        result["rows"] += rows.values()
        del backend
    return result


def orchestrator_share(args) -> dict:
    """The orchestrator's share of wall time for each decode path × memory mode; rows written as they finish."""
    import torch

    from longshort.agents.actor import LocalAgent
    from longshort.agents.hf_backend import load_tokenizer
    from longshort.config import MemoryConfig, SamplingConfig, SolveConfig, load_config
    from longshort.orchestrator import Orchestrator
    from longshort.problem import Problem
    from longshort.protocol import Protocol

    config = load_config(args.config)
    tokenizer = load_tokenizer(config.long.path, config.long.trust_remote_code, "long")
    protocol = Protocol.from_tokenizer(config.protocol, tokenizer, config.long.path)
    model = build_model(args.shape, args.model, args.dtype, args.device)
    vocab = model.config.vocab_size
    if vocab < len(tokenizer):
        raise ValueError(f"the model's vocabulary ({vocab}) is smaller than the tokenizer of {config.long.path} "
                         f"({len(tokenizer)})")
    unwritable = torch.tensor(sorted(set(protocol.ids.values()) | set(range(len(tokenizer), vocab))),
                              device=args.device)
    model.get_output_embeddings().register_forward_hook(
        lambda module, inputs, logits: logits.index_fill_(-1, unwritable, float("-inf")))
    problems = [Problem(f"p{i}", f"Problem {i}: think it through.", "0", "bench", "synthetic")
                for i in range(args.problems)]
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, seed=args.seed)
    result = {"kind": "orchestrator", "workload": workload(args) | {"chunk": args.chunk},
              "device": device_name(args.device), "rows": []}
    for decode in args.decode:
        # Prefix reuse on, as in every solve, with room for every transcript's context (a turn's context extends
        # the one before; contexts hold the reasoning, two tags per turn and the prompt): a cache smaller than the
        # live contexts, visited in turn, would evict each one just before it is needed again.
        cache = args.problems * (2 * args.reasoning + 256)
        agents = {name: LocalAgent(None, name, hosted(model, args, args.problems, decode, cache))
                  for name in ("long", "short")}
        for k, mode in enumerate(args.modes):
            memory = MemoryConfig(policy=mode, segment_budget=args.segment, summary_cap=args.summary,
                                  max_rounds=args.reasoning, summarizer="long")
            # the summarizer's budget also pays for its summaries, one per full segment
            summaries = 0 if mode == "unfold" else args.reasoning // args.segment
            solve = SolveConfig(router="alternate", memory=memory, chunk_tokens=args.chunk, max_turns=4 * args.reasoning,
                                max_long_tokens=-(-args.reasoning // 2) + summaries * args.summary,
                                max_short_tokens=args.reasoning // 2,
                                timeout_s=None, concurrency=args.max_concurrency or args.problems)
            if k == 0:  # one problem untimed first, so the first mode does not pay the process's warm-up
                warm_up = Problem("warm-up", "A problem to warm up on.", "0", "bench", "synthetic")
                Orchestrator(agents, tokenizer, protocol, solve, sampling).solve([warm_up])
            orch = Orchestrator(agents, tokenizer, protocol, solve, sampling)
            transcripts = orch.solve(problems)
            written = sum(t.tokens(kind="think") for t in transcripts)
            if written != args.problems * args.reasoning:
                raise RuntimeError(f"{mode}: the transcripts wrote {written} think tokens, not {args.problems} × "
                                   f"{args.reasoning}: a context reached the model's limit "
                                   f"({agents['long'].info()['max_context']} tokens)")
            stats = orch.stats
            own = stats["wall_s"] - stats["backend_s"]
            generated = sum(t.tokens() for t in transcripts)
            row = {
                "decode": decode, "mode": mode, "transcripts": len(transcripts),
                "think_tokens": written, "generated": generated,
                "stop_reasons": dict(Counter(t.stop_reason for t in transcripts)),
                "folds": sum(t.folds for t in transcripts), "rounds": stats["rounds"], "requests": stats["requests"],
                "wall_s": round(stats["wall_s"], 6), "backend_s": round(stats["backend_s"], 6),
                "orchestrator_share": round(own / stats["wall_s"], 4),
                "orchestrator_ms_per_round": round(own / stats["rounds"] * 1000, 3),
                "orchestrator_ms_per_request": round(own / stats["requests"] * 1000, 4),
                "generated_tok_s": round(generated / stats["wall_s"], 2),
            }
            result["rows"].append(row)
            print(f"{decode} decode, {mode}: orchestrator {row['orchestrator_share']:.1%} of {row['wall_s']:.2f} s "
                  f"({row['orchestrator_ms_per_round']:.2f} ms per round)", file=sys.stderr)
            save(args, result)
    return result


def save(args, result: dict) -> None:
    """Write what is measured so far, so a run cut short keeps its finished rows."""
    if args.output:
        Path(args.output).parent.mkdir(parents=True, exist_ok=True)
        Path(args.output).write_text(json.dumps(result, indent=2))


def workload(args) -> dict:
    return {key: getattr(args, key) for key in ("shape", "model", "dtype", "problems", "prompt", "reasoning", "segment",
                                                 "summary", "kv_budget_gb", "max_concurrency", "seed")}


def device_name(device: str) -> str:
    import platform

    import torch

    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.processor() or platform.machine()}, {torch.get_num_threads()} threads)"


def bandwidth(device: str) -> float:
    """Bytes per second of a large on-device copy (read + write), the best of five."""
    import torch

    size = 2**28 if device.startswith("cuda") else 2**26
    source = torch.empty(size, dtype=torch.uint8, device=device)
    target = torch.empty_like(source)
    best = math.inf
    for _ in range(5):
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        began = time.perf_counter()
        target.copy_(source)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        best = min(best, time.perf_counter() - began)
    return 2 * size / best


def decode_grid(args) -> dict:
    """ms per decode step of HFBackend for each decode path × batch × context, against the bandwidth floor."""
    import random

    import torch

    from longshort.agents.backend import GenerationRequest

    model = build_model(args.shape, args.model, args.dtype, args.device)
    kv_bytes, weights = kv_bytes_per_token(model), weight_bytes(model)
    backends = {decode: hosted(model, args, max(args.batches), decode) for decode in args.decode}
    speed = bandwidth(args.device)
    result = {"kind": "decode_grid", "workload": workload(args), "bandwidth_bytes_s": round(speed),
              "weight_bytes": weights, "kv_bytes_per_token": kv_bytes, "device": device_name(args.device),
              "cells": []}
    rng = random.Random(args.seed)
    vocab = model.config.vocab_size
    for context in args.contexts:
        for batch in args.batches:
            prompts = [[rng.randrange(vocab) for _ in range(context)] for _ in range(batch)]
            floor_ms = (weights + batch * context * kv_bytes) / speed * 1000
            cell = {"batch": batch, "context": context, "floor_ms": round(floor_ms, 3)}
            for decode, backend in backends.items():
                def timed(new: int) -> float:
                    requests = [GenerationRequest(p, new, (), temperature=1.0, seed=i, logprobs=False)
                                for i, p in enumerate(prompts)]
                    began = time.perf_counter()
                    backend.generate(requests)
                    return time.perf_counter() - began

                def fastest(new: int) -> float:
                    """The fastest of 5 runs: the least disturbed by whatever else the machine is doing (one
                    run each made the difference below negative on a busy 2-core machine)."""
                    return min(timed(new) for _ in range(5))

                try:
                    timed(1 + args.steps)  # warm-up, and the capture of this shape's step for static decode
                    step_ms = (fastest(1 + args.steps) - fastest(1)) / args.steps * 1000
                    if step_ms <= 0:
                        raise RuntimeError(f"batch {batch}, context {context}, {decode}: {args.steps} decode steps "
                                           "took no measurable time beside the prefill; raise --steps")
                except torch.OutOfMemoryError:
                    cell[decode] = "out of memory"
                    print(f"{decode:8s} batch {batch:4d} context {context:6d}: out of memory", file=sys.stderr)
                    continue
                finally:
                    if args.device.startswith("cuda"):
                        torch.cuda.empty_cache()
                cell[decode] = {"ms_per_step": round(step_ms, 3), "floor_share": round(floor_ms / step_ms, 4)}
                print(f"{decode:8s} batch {batch:4d} context {context:6d}: {step_ms:8.2f} ms/step, "
                      f"floor {floor_ms:7.2f} ms ({floor_ms / step_ms:.0%})", file=sys.stderr)
            timings = [cell[d]["ms_per_step"] for d in ("dynamic", "static") if isinstance(cell.get(d), dict)]
            if len(timings) == 2:
                cell["static_speedup"] = round(timings[0] / timings[1], 3)
            result["cells"].append(cell)
            save(args, result)
    return result


def table(result: dict) -> str:
    if result["kind"] == "orchestrator":
        return orchestrator_table(result)
    head = (f"{'decode':8s} {'mode':14s} {'conc':>6s} {'peak ctx':>8s} {'reason tok/s':>12s} {'all tok/s':>10s} "
            f"{'prefill':>10s} {'seconds':>8s} {'speedup':>8s}")
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        speedup = f"{r['speedup_vs_unfold']:7.2f}x" if "speedup_vs_unfold" in r else ""
        lines.append(f"{r['decode']:8s} {r['mode']:14s} {r['concurrency']:6d} {r['peak_context']:8d} "
                     f"{r['reasoning_tok_s']:12.1f} {r['generated_tok_s']:10.1f} {r['prefill']:10d} "
                     f"{r['seconds']:8.2f} {speedup:>8s}")
    return "\n".join(lines)


def orchestrator_table(result: dict) -> str:
    head = (f"{'decode':8s} {'mode':14s} {'rounds':>7s} {'requests':>9s} {'wall s':>8s} {'backend s':>9s} "
            f"{'orch share':>10s} {'orch ms/round':>13s} {'ms/request':>10s} {'tok/s':>9s}")
    lines = [head, "-" * len(head)]
    for r in result["rows"]:
        lines.append(f"{r['decode']:8s} {r['mode']:14s} {r['rounds']:7d} {r['requests']:9d} {r['wall_s']:8.2f} "
                     f"{r['backend_s']:9.2f} {r['orchestrator_share']:10.1%} {r['orchestrator_ms_per_round']:13.2f} "
                     f"{r['orchestrator_ms_per_request']:10.3f} {r['generated_tok_s']:9.1f}")
    return "\n".join(lines)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    what = parser.add_mutually_exclusive_group()
    what.add_argument("--shape", choices=sorted(SHAPES), default="tiny", help="random weights of this shape")
    what.add_argument("--model", help="a checkpoint folder instead")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--dtype", default=None, help="default: bfloat16 on cuda, float32 on cpu")
    parser.add_argument("--kv-budget-gb", type=float, default=None, help="KV memory budget in GiB (default 48; tiny: 0.0002)")
    parser.add_argument("--problems", type=int, default=32)
    parser.add_argument("--prompt", type=int, default=16)
    parser.add_argument("--reasoning", type=int, default=96)
    parser.add_argument("--segment", type=int, default=24)
    parser.add_argument("--summary", type=int, default=4)
    parser.add_argument("--max-concurrency", type=int, default=None, help="cap on sequences decoded together")
    parser.add_argument("--modes", type=listed(MODES), default=list(MODES), help="memory modes to run (unfold first)")
    parser.add_argument("--decode", type=listed(DECODES), default=None,
                        help="HFBackend decode paths, each timed in turn (default: static on cuda, dynamic on cpu)")
    kind = parser.add_mutually_exclusive_group()
    kind.add_argument("--decode-grid", action="store_true", help="time decode steps for --batches x --contexts")
    kind.add_argument("--orchestrator", action="store_true",
                      help="the orchestrator's share of wall time, solving with both agents over the model")
    parser.add_argument("--config", default="configs/tiny.yaml",
                        help="with --orchestrator: whose tokenizer (long.path) and protocol tags to use")
    parser.add_argument("--chunk", type=int, default=12, help="with --orchestrator: tokens per turn")
    parser.add_argument("--batches", type=integers, default=[1, 8, 32])
    parser.add_argument("--contexts", type=integers, default=[128, 512])
    parser.add_argument("--steps", type=int, default=16, help="decode steps timed per grid cell")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output", help="write the result as JSON here")
    args = parser.parse_args(argv)
    args.dtype = args.dtype or ("bfloat16" if args.device.startswith("cuda") else "float32")
    args.modes = [mode for mode in MODES if mode in args.modes]  # unfold first: the others' ratios are to it
    args.decode = args.decode or (["static"] if args.device.startswith("cuda") else ["dynamic"])
    if args.kv_budget_gb is None:
        args.kv_budget_gb = 0.0002 if args.shape == "tiny" and not args.model else 48.0
    if min(args.problems, args.prompt, args.reasoning, args.segment, args.summary, args.chunk) < 1:
        parser.error("--problems, --prompt, --reasoning, --segment, --summary and --chunk must be >= 1")
    if args.orchestrator and args.segment % (2 * args.chunk):
        parser.error(f"with --orchestrator, --segment ({args.segment}) must be a multiple of 2 × --chunk "
                     f"({args.chunk}), so that both agents write whole turns in every segment")
    return args


def integers(text: str) -> list[int]:
    return [int(x) for x in text.split(",")]


def listed(choices):
    """An argparse type: a comma-separated list of ``choices``, an unknown one named."""
    def parse(text: str) -> list[str]:
        items = text.split(",")
        unknown = [item for item in items if item not in choices]
        if unknown:
            raise argparse.ArgumentTypeError(f"unknown {', '.join(unknown)}; choose from {', '.join(choices)}")
        return items
    return parse


def main(argv=None) -> dict:
    args = parse_args(argv)
    run = decode_grid if args.decode_grid else orchestrator_share if args.orchestrator else throughput
    result = run(args)
    if not args.decode_grid:
        print(table(result))
    save(args, result)
    return result


if __name__ == "__main__":
    main()
