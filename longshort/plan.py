"""`longshort plan`: the resolved plan of a config, and the inconsistencies that would waste a run.

Printed: each model (path, format, backend, GPUs, context), every budget (turns, tokens, segments, summaries, the
worst-case context of each memory policy), the scoring, chunking, cold-start and RL settings, each stage's command
and the GPU layout. Refused, each problem on a line of its own: a cold-start transcript that ``solve.max_turns``
cannot hold (its thoughts counted on the traces when given, else bounded), a fold that cannot fit the model's
context, cold-start fold data that folds elsewhere than inference does (or, with self-opened folds, past the hard
cap), a key the config sets that has no effect under its other settings (a dead key), and the OpenRLHF backend's
own batch and colocation rules.

The context figures need each model's context length: ``max_context`` when the config sets it, else the model's
``max_position_embeddings`` read from its folder's config.json (a hub name that is not on disk is reported as
unknown; set ``max_context`` to check it).
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import yaml

from longshort.config import Config, ModelConfig, load_config
from longshort.memory import POLICIES

PROMPT_TOKENS = 512  # room assumed for the question and the chat template in the context checks

# A key (dotted, "*" for any entry) set in the YAML is dead when the condition on the config holds.
DEAD_KEYS = [
    ("{model}.text", lambda c, m: m.format == "protocol", "the model speaks the protocol (format: protocol)"),
    ("{model}.text.think_open", lambda c, m: not m.text.reasoning, "text.reasoning is false"),
    ("{model}.text.think_close", lambda c, m: not m.text.reasoning, "text.reasoning is false"),
    ("{model}.gpu_memory_utilization", lambda c, m: m.backend != "vllm", "the backend is hf"),
    ("{model}.decode", lambda c, m: m.backend != "hf", "the backend is vllm"),
    ("{model}.prefix_cache_tokens", lambda c, m: m.backend != "hf", "the backend is vllm"),
    ("{model}.max_prefill_tokens", lambda c, m: m.backend != "hf", "the backend is vllm"),
    ("{model}.max_batch_size", lambda c, m: m.backend != "hf", "the backend is vllm"),
    ("scoring.continue_tokens", lambda c, m: c.scoring.policy != "continue", "scoring.policy is answer"),
    ("scoring.answer_prompt", lambda c, m: c.model(c.scoring.agent).format == "text",
     "the scoring model has format: text (its text.answer_prompt closes the rollouts)"),
    ("chunking.group_window", lambda c, m: c.chunking.group_by is None, "chunking.group_by is null"),
    ("coldstart.rewrite_prompt", lambda c, m: c.coldstart.rewrite == "keep", "coldstart.rewrite is keep"),
    ("coldstart.rewrite_tokens", lambda c, m: c.coldstart.rewrite == "keep", "coldstart.rewrite is keep"),
    ("coldstart.rewrite_context", lambda c, m: c.coldstart.rewrite == "keep", "coldstart.rewrite is keep"),
    ("coldstart.summary_prompt", lambda c, m: c.model(c.coldstart.summarizer).format == "protocol",
     "the summarizer speaks the protocol and writes a summary turn"),
    *[(f"coldstart.{key}", lambda c, m: c.coldstart.backend == "local", "coldstart.backend is local")
      for key in ("num_gpus", "micro_batch_size", "max_epochs", "max_len", "zero_stage", "attn_implementation")],
    *[(f"coldstart.{key}", lambda c, m: c.coldstart.backend == "openrlhf", "coldstart.backend is openrlhf")
      for key in ("long_steps", "short_steps")],
    *[(f"rl.{key}", lambda c, m: c.rl.backend == "local", "rl.backend is local")
      for key in ("num_gpus", "vllm_memory_utilization", "max_len", "zero_stage", "attn_implementation", "rounds")],
    ("rl.alternate_every", lambda c, m: c.rl.backend == "local" and c.rl.train == "joint", "rl.train is joint"),
    *[(f"rl.{key}", lambda c, m: c.rl.backend == "openrlhf", "rl.backend is openrlhf (rounds × 2 × alternate_every "
                                                              "steps, no Fold-Unfold gap evaluation)")
      for key in ("steps", "gap_every", "gap_problems", "gap_policies", "heldout")],
    ("eval.data", lambda c, m: c.eval.heldout is None, "eval.heldout is null"),
]


def model_context(model: ModelConfig) -> int | None:
    """The context a model is used with: ``max_context``, else its folder's ``max_position_embeddings``."""
    if model.max_context:
        return model.max_context
    path = Path(model.path) / "config.json"
    if not path.is_file():
        return None
    found = json.loads(path.read_text())
    return found.get("max_position_embeddings") or found.get("text_config", {}).get("max_position_embeddings")


def models(config: Config) -> dict[str, ModelConfig]:
    return {"long": config.long, "short": config.short} | {f"baselines.{n}": m for n, m in config.baselines.items()}


def dead_keys(config: Config, raw: dict) -> list[str]:
    """The keys ``raw`` (the YAML as written) sets that have no effect under the config's other settings."""
    def present(path: list[str]) -> bool:
        part = raw
        for key in path:
            if not isinstance(part, dict) or key not in part:
                return False
            part = part[key]
        return True

    found = []
    for pattern, dead, why in DEAD_KEYS:
        targets = models(config).items() if "{model}" in pattern else [("", None)]
        for name, model in targets:
            key = pattern.format(model=name)
            if present(key.split(".")) and dead(config, model):
                found.append(f"{key} has no effect: {why}")
    return found


def most_thoughts(config: Config, traces: str | None) -> tuple[int, str]:
    """The most thoughts a cold-start trace can have, and how that was found: counted on ``traces`` (or the tiny
    world's held-out traces) with the long model's tokenizer when both are at hand; for a tiny world not built yet,
    the most paragraphs its generator writes in a held-out trace (the tiny chunking keeps a paragraph one thought);
    else bounded by the budgets' tokens over ``chunking.min_tokens``."""
    from longshort.chunking import chunk_text

    unbuilt_world = False
    if traces is None and config.tiny is not None:
        traces = str(Path(config.tiny.out_dir) / "heldout_traces.jsonl")
        unbuilt_world = not Path(traces).is_file()
    if traces is not None and Path(traces).is_file() and (Path(config.long.path) / "tokenizer_config.json").is_file():
        from transformers import AutoTokenizer

        from longshort.importance import read_scoring_inputs

        tokenizer = AutoTokenizer.from_pretrained(config.long.path)
        inputs = read_scoring_inputs(traces, skip_bad=True)[:200]
        if inputs:
            most = max(len(chunk_text(item.thinking, tokenizer, config.chunking)) for item in inputs)
            return most, f"the most in {len(inputs)} traces of {traces}"
    if unbuilt_world:
        from longshort.data.tiny_world import heldout_traces, problems

        generated = heldout_traces(config.tiny, problems(config.tiny).heldout)
        return max(map(len, generated)), f"the most paragraphs in the {len(generated)} held-out traces it will build"
    budget = config.solve.max_long_tokens + config.solve.max_short_tokens
    return math.ceil(budget / config.chunking.min_tokens), (
        f"the budgets' {budget} tokens in thoughts of chunking.min_tokens ({config.chunking.min_tokens})")


def problems(config: Config, raw: dict, traces: str | None = None) -> list[str]:
    """Every inconsistency of ``config`` (``raw``: its YAML as written; ``traces``: cold-start traces to count
    thoughts on), one line each."""
    solve, memory, chunking, cold = config.solve, config.solve.memory, config.chunking, config.coldstart
    found = dead_keys(config, raw)
    thoughts, how = most_thoughts(config, traces)
    turns = 2 * thoughts - 1 + memory.max_rounds  # every thought long, a hand-back between each two, every summary
    if turns > solve.max_turns:
        found.append(f"solve.max_turns ({solve.max_turns}) cannot hold a cold-start transcript: {thoughts} thoughts "
                     f"({how}), a hand-back between long ones and {memory.max_rounds} summaries make {turns} turns")
    if memory.folds == "self":  # the writer folds where its steps end, which the data must place before the cap
        if cold.segment_tokens > memory.segment_budget:
            found.append(f"coldstart.segment_tokens ({cold.segment_tokens}) exceeds solve.memory.segment_budget "
                         f"({memory.segment_budget}): self-opened summaries in the data would come after the hard cap")
    elif cold.segment_tokens != memory.fold_at:
        found.append(f"coldstart.segment_tokens ({cold.segment_tokens}) differs from where inference folds "
                     f"(solve.memory.fold_after, else segment_budget: {memory.fold_at})")
    if cold.summary_tokens > memory.summary_cap:
        found.append(f"coldstart.summary_tokens ({cold.summary_tokens}) exceeds solve.memory.summary_cap "
                     f"({memory.summary_cap}): the agents would learn summaries inference cuts")
    for agent in ("long", "short"):
        context = model_context(config.model(agent))
        if context is None:
            continue
        for policy, need in worst_contexts(config).items():
            if need > context and POLICIES[policy].folds:
                found.append(f"{policy}: a transcript can need {need} tokens of context ({PROMPT_TOKENS} for the "
                             f"prompt), more than {agent}'s {context}")
    for agent in ("long", "short"):
        model = config.model(agent)
        context = model_context(model)
        scored = chunking.max_tokens + config.scoring.answer_tokens + PROMPT_TOKENS
        if model.format == "text" and context is not None and scored > context:
            found.append(f"{agent}: a thought of chunking.max_tokens cannot be scored in its context of {context}")
    if config.rl.backend == "openrlhf":  # a sample is a whole transcript, or under folding one segment in context
        contexts = worst_contexts(config)
        longest = max(config.rl.policies, key=contexts.get)
        if config.rl.max_len < contexts[longest]:
            found.append(f"rl.max_len ({config.rl.max_len}) cannot hold a whole {longest} sample of the budgets "
                         f"({contexts[longest]} with {PROMPT_TOKENS} for the prompt): OpenRLHF would cut the samples")
        from longshort.rl.openrlhf_rl import check

        try:
            check(config)
        except ValueError as e:
            found.append(str(e))
    return found


def worst_contexts(config: Config) -> dict[str, int]:
    """Per memory policy the config runs, the longest context a transcript can reach: the prompt, the summaries it
    keeps, the segment (or, unfolded, every think token) and one more turn. A fold must fit (folding exists to bound
    the context); an unfolded transcript may outgrow it and then stops on its budget, as the model's context is one."""
    solve, memory = config.solve, config.solve.memory
    policies = {solve.memory.policy, *config.rl.policies, config.coldstart.fold_policy, *config.eval.policies}
    needs = {}
    for policy in sorted(policies):
        if not POLICIES[policy].folds:  # every think token, and every summary if it writes them
            body = solve.max_long_tokens + solve.max_short_tokens
            body += memory.max_rounds * memory.summary_cap if POLICIES[policy].summarizes else 0
        else:
            kept = memory.max_rounds if policy == "fold-append" else 1
            body = kept * memory.summary_cap + memory.segment_budget
        needs[policy] = PROMPT_TOKENS + body + solve.chunk_tokens
    return needs


def stages(config: Config, path: str) -> list[tuple[str, str]]:
    """(stage, command) in order, for this config."""
    out = []
    text = {config.model(agent).path: agent for agent in ("short", "long") if config.model(agent).format == "text"}
    for folder, agent in sorted(text.items(), key=lambda item: item[1]):
        out.append((f"tags for {agent}", f"longshort add-tokens --model BASE_MODEL --out {folder}"))
    reasoning = [name for name, m in config.baselines.items() if m.text.reasoning]
    if reasoning:
        out.append(("traces", f"longshort solve --config {path} --free {reasoning[0]} --input TRAIN_PROBLEMS.jsonl "
                              "--output traces.jsonl"))
    traces = "" if config.tiny is not None else " --traces traces.jsonl"
    dry = " (--dry-run prints the OpenRLHF commands)"
    out.append(("cold-start", f"longshort coldstart --config {path}{traces}"
                              + (dry if config.coldstart.backend == "openrlhf" else "")))
    out.append(("RL", f"longshort rl --config {path}" + (dry if config.rl.backend == "openrlhf" else "")))
    bench = config.eval.heldout or ("synthetic" if config.tiny is not None else "math500")
    data = f" --data {config.eval.data}" if config.eval.data else ""
    free = ",free" if config.baselines else ""
    out.append(("eval", f"longshort eval --config {path} --benchmarks {bench}{data} --modes long,short,longshort{free} "
                        "--output runs/eval"))
    return out


def describe(config: Config, path: str) -> str:
    """The plan, as printed."""
    solve, memory, scoring, chunking, cold, rl = (config.solve, config.solve.memory, config.scoring, config.chunking,
                                                  config.coldstart, config.rl)
    lines = [f"plan of {path}", "", "models:"]
    for name, model in models(config).items():
        text = model.text
        kind = f"reasoning in {text.think_open}…{text.think_close}" if text.reasoning else "instruct"
        how = "protocol tags" if model.format == "protocol" else (
            f"text format, {kind}, answer prompt {text.answer_prompt!r}")
        context = model_context(model)
        lines.append(f"  {name:<18} {model.path}  [{how}]  {model.backend} on {model.device} {model.dtype}, "
                     f"{model.num_gpus:g} GPU, context {context if context else 'unknown'}")
    lines += ["", "budgets:",
              f"  solve: router {solve.router}, turns of at most {solve.chunk_tokens} tokens, {solve.max_turns} turns, "
              f"{solve.max_long_tokens} long + {solve.max_short_tokens} short tokens, {solve.concurrency} at a time, "
              f"{solve.timeout_s:g} s each",
              f"  memory: {memory.policy}; segments of {memory.segment_budget} think tokens (fold after "
              f"{memory.fold_at}), summaries of {memory.summary_cap} by {memory.summarizer}, at most "
              f"{memory.max_rounds}",
              "  worst-case context: " + ", ".join(f"{p} {n}" for p, n in worst_contexts(config).items()),
              f"  chunking: thoughts of {chunking.min_tokens}–{chunking.max_tokens} tokens"
              + (f", grouped by {chunking.group_by}" if chunking.group_by else ""),
              f"  scoring: {scoring.agent}, K = {scoring.rollouts} {scoring.policy} rollouts of "
              f"{scoring.answer_tokens if scoring.policy == 'answer' else scoring.continue_tokens} tokens, δ = "
              f"exp(-{scoring.context_decay:g} · context), {scoring.traces_per_batch} traces per batch",
              f"  cold-start: split at S > {cold.threshold:g}, rewrite {cold.rewrite}, fold {cold.fold_share:.0%} "
              f"({cold.fold_policy}, segments of {cold.segment_tokens}, summaries of {cold.summary_tokens} by "
              f"{cold.summarizer}); {cold.backend}: "
              + (f"{cold.long_steps} long + {cold.short_steps} short steps" if cold.backend == "local"
                 else f"{cold.max_epochs} epochs, max_len {cold.max_len}")
              + f", batch {cold.batch_size}, lr {cold.learning_rate:g}",
              f"  RL: {rl.backend}, " + (f"{rl.steps} steps" if rl.backend == "local"
                                        else f"{rl.rounds} rounds × 2 agents × {rl.alternate_every} steps")
              + f" of {rl.problems_per_step} problems × {rl.samples_per_problem} samples, {rl.router}/{rl.policy}, "
              f"lr {rl.learning_rate:g}, kl {rl.kl_coef:g}, long token cost {rl.reward.long_token_cost:g}",
              f"  before/after: {config.eval.heldout or ('synthetic' if config.tiny else 'none (set eval.heldout)')}",
              "", "stages:"]
    lines += [f"  {n}. {stage}: {command}" for n, (stage, command) in enumerate(stages(config, path), 1)]
    lines += ["", "GPUs:"]
    serving = {name: m.num_gpus for name, m in models(config).items() if m.num_gpus}
    listed = ", ".join(f"{n} {g:g}" for n, g in serving.items()) + f" (total {sum(serving.values()):g})"
    lines.append("  serving: " + (listed if serving else "none (CPU)"))
    if cold.backend == "openrlhf":
        lines.append(f"  cold-start SFT: {cold.num_gpus} per agent (DeepSpeed ZeRO-{cold.zero_stage})")
    if rl.backend == "openrlhf":
        partner = max(config.long.num_gpus, config.short.num_gpus)
        lines.append(f"  RL: {rl.num_gpus} for the agent being trained (DeepSpeed + {rl.num_gpus} vLLM engines) + "
                     f"{partner:g} for the frozen partner = {rl.num_gpus + partner:g}")
    return "\n".join(lines)


def plan(path: str, traces: str | None = None) -> tuple[str, list[str]]:
    """The printed plan of the config at ``path`` and its problems."""
    config = load_config(path)
    raw = yaml.safe_load(Path(path).read_text()) or {}
    return describe(config, path), problems(config, raw, traces)
