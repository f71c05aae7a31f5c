"""Run configs: YAML validated into frozen, typed objects.

An unknown key, a wrong type or a missing file is an error that names the file and the key; nothing falls back
to a silent default. Relative paths in a config resolve against the config file's folder.
"""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator


class ConfigError(ValueError):
    """A config file that cannot be used, with the file and key named."""


def _registered(kind: str, registry):
    """A validator that accepts only the names ``registry()`` (a name -> implementation mapping) holds: the names
    come from the registries themselves, so a new router or policy is known to the config as soon as it exists."""
    def check(name: str) -> str:
        known = registry()
        if name not in known:
            raise ValueError(f"unknown {kind} '{name}'; known: {', '.join(sorted(known))}")
        return name

    return AfterValidator(check)


def _routers():
    from longshort.routers import ROUTERS

    return ROUTERS


def _policies():
    from longshort.memory import POLICIES

    return POLICIES


def _fold_policies():
    return {name: policy for name, policy in _policies().items() if policy.folds}


def _summarizing_policies():
    return {name: policy for name, policy in _policies().items() if policy.summarizes}


def _rollout_policies():
    return {**_policies(), "mix": None}


def _estimators():
    from longshort.rl.rewards import ESTIMATORS

    return ESTIMATORS


Router = Annotated[str, _registered("router", _routers)]
MemoryPolicy = Annotated[str, _registered("memory policy", _policies)]
FoldPolicy = Annotated[str, _registered("folding memory policy", _fold_policies)]
SummarizingPolicy = Annotated[str, _registered("summarizing memory policy", _summarizing_policies)]
RolloutPolicy = Annotated[str, _registered("memory policy", _rollout_policies)]
Estimator = Annotated[str, _registered("advantage estimator", _estimators)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _check_template(key: str, template: str, fields: tuple[str, ...], needed: str) -> None:
    """A prompt template may use only ``fields`` as placeholders and must use ``needed``."""
    import string

    try:
        used = {name for _, name, _, _ in string.Formatter().parse(template) if name is not None}
    except ValueError as e:
        raise ValueError(f"{key}: {e} (write a literal brace as {{{{ or }}}})") from None
    unknown = used - set(fields)
    if unknown or needed not in used:
        problem = f"unknown placeholder {{{sorted(unknown)[0]}}}" if unknown else f"no {{{needed}}}"
        raise ValueError(f"{key}: {problem}; it may use {', '.join('{' + f + '}' for f in fields)} (a literal brace "
                         "is written {{ or }})")


class TextFormat(Strict):
    """How a model that has not learnt the protocol tags is prompted and read (``format: text``): its own chat
    template, a ``<think>`` block if it is a reasoning model, and an answer prompt (longshort/chat.py)."""

    prompt: str = "{question}"  # the user message; {question} is the problem's text
    # A reasoning model (DeepSeek-R1-Distill) thinks inside think_open … think_close, then answers; an instruct model
    # (Qwen2.5-Instruct, Llama-3.1-Instruct, SmolLM2) answers directly. Each tag must be one token of its tokenizer.
    reasoning: bool = False
    think_open: str = "<think>"
    think_close: str = "</think>"
    # Closes a thinking prefix (after think_close for a reasoning model) and asks for the final answer; the
    # rollout's text after it is graded with the math grader.
    answer_prompt: str = "\n\nThe final answer is $\\boxed{"

    @model_validator(mode="after")
    def _prompt_has_the_question(self):
        _check_template("text.prompt", self.prompt, ("question",), "question")
        return self


class ModelConfig(Strict):
    """One hosted model (the long or the short agent, or a free-form baseline)."""

    path: str
    # protocol: the model speaks the collaboration tags (the tiny world; any agent after cold-start SFT);
    # text: a pretrained model in its own chat format (``text``), for scoring, rewriting, summaries and baselines.
    format: Literal["protocol", "text"] = "protocol"
    text: TextFormat = TextFormat()
    backend: Literal["hf", "vllm"] = "hf"
    device: str = "cpu"  # "cpu", "cuda", "cuda:1"
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = "float32"
    trust_remote_code: bool = False
    max_context: int | None = Field(default=None, ge=2)  # defaults to the model's max_position_embeddings
    max_batch_size: int = Field(default=64, ge=1)  # rows decoded together by the HF backend
    # Reuse the KV of prompt prefixes already computed (HF: its prefix cache; vLLM: automatic prefix caching).
    prefix_reuse: bool = True
    prefix_cache_tokens: int = Field(default=65536, ge=1)  # HF only: positions of KV the prefix cache keeps
    # HF only: most prompt tokens (rows × padded length) one prefill forward computes; a larger batch is prefilled
    # in groups of rows, a longer prompt alone. Bounds the prefill's activation memory on a GPU.
    max_prefill_tokens: int = Field(default=32768, ge=1)
    # HF only: "static" decodes in a preallocated cache of fixed shapes, each step replayed as a CUDA graph on a GPU
    # (for long decodes of large models); "dynamic" grows transformers' cache, with no capture cost per shape.
    decode: Literal["dynamic", "static"] = "dynamic"
    # Ray placement of the actor that hosts this model.
    num_cpus: float = Field(default=1, ge=0)
    num_gpus: float = Field(default=0, ge=0)
    max_restarts: int = Field(default=0, ge=-1)  # -1: restart without limit
    # vLLM only.
    gpu_memory_utilization: float = Field(default=0.9, gt=0, le=1)


class SamplingConfig(Strict):
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    seed: int = Field(default=0, ge=0)


class ProtocolConfig(Strict):
    """Tags of the collaboration protocol; each must be one token of both agents' tokenizers."""

    long_open: str = "<|long|>"
    long_close: str = "<|/long|>"
    short_open: str = "<|short|>"
    short_close: str = "<|/short|>"
    summary_open: str = "<|summary|>"
    summary_close: str = "<|/summary|>"
    answer_open: str = "<|answer|>"
    answer_close: str = "<|/answer|>"
    handback: str = "<|handback|>"

    def tags(self) -> list[str]:
        return list(self.model_dump().values())


class TinyModelConfig(Strict):
    """Shape and training length of one tiny Qwen2 checkpoint."""

    hidden_size: int = Field(ge=1)
    num_hidden_layers: int = Field(ge=1)
    num_attention_heads: int = Field(ge=1)
    steps: int = Field(ge=1)
    mlp_ratio: int = Field(default=4, ge=1)  # the MLP's intermediate size over the hidden size


class TinyWorldConfig(Strict):
    """How `make tiny` builds the embedded synthetic world."""

    out_dir: str = "../artifacts/tiny"
    seed: int = Field(default=0, ge=0)
    train_problems: int = Field(default=6000, ge=1)
    heldout_problems: int = Field(default=200, ge=1)
    min_ops: int = Field(default=2, ge=1)
    max_ops: int = Field(default=4, ge=1)
    modulus: int = Field(default=10, ge=2)
    # plain: a step now and then followed by a check or a detour; overthinking: R1's habits (checks of checks,
    # hesitation, the chain redone from the start), so most of the long model's tokens change nothing
    long_style: Literal["plain", "overthinking"] = "plain"
    # 2: ops change x or y and the last brings y into x, so a fold's summary has two values to carry
    variables: Literal[1, 2] = 1
    # the share of the fold summaries in the models' training data that keep only x (with 2 variables): the pair
    # starts out summarizing poorly, so Fold starts below Unfold and folding RL has something to learn
    lossy_summaries: float = Field(default=0.0, ge=0, le=1)
    vocab_size: int = Field(default=384, ge=1)
    long_model: TinyModelConfig = TinyModelConfig(hidden_size=128, num_hidden_layers=2, num_attention_heads=4,
                                                 steps=1800, mlp_ratio=2)
    short_model: TinyModelConfig = TinyModelConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, steps=300)
    batch_size: int = Field(default=64, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0)
    # the rate stays at its peak until the last third of the steps: the long model learns the arithmetic table and
    # to copy an operand from its line late (500 to 1,500 steps at the peak rate, the seed decides when), and a rate
    # that decays from the start stalls it halfway there (BENCHMARKS.md, "Tiny world build")
    lr_decay_share: float = Field(default=0.33, gt=0, le=1)

    @model_validator(mode="after")
    def _consistent(self):
        if self.max_ops < self.min_ops:
            raise ValueError(f"max_ops ({self.max_ops}) must not be below min_ops ({self.min_ops})")
        if self.lossy_summaries and self.variables == 1:
            raise ValueError("lossy_summaries needs variables: 2 (with one variable, x is all a summary keeps)")
        return self


class MemoryConfig(Strict):
    """Folding (longshort/memory.py), under a policy that summarizes segments.

    ``folds: forced``: the orchestrator has ``summarizer`` summarize a segment at the first turn boundary after
    ``fold_after`` think tokens (as cold-start fold data closes a segment at the first thought that reaches
    ``coldstart.segment_tokens``). ``folds: self`` (Accordion-Thinking): the writer closes its step with a summary it
    opens itself, in the same turn. Either way ``segment_budget`` is the hard cap, where a turn still running is cut
    and the summary forced, and ``max_rounds`` bounds the summaries."""

    policy: MemoryPolicy = "unfold"
    folds: Literal["forced", "self"] = "forced"  # who decides when a segment is summarized
    segment_budget: int = Field(default=96, ge=1)  # most think tokens in one segment
    fold_after: int | None = Field(default=None, ge=1)  # forced folds; null: fold only at segment_budget
    summary_cap: int = Field(default=32, ge=1)  # most tokens of one summary
    max_rounds: int = Field(default=16, ge=1)  # most summaries (folds) per transcript
    summarizer: Literal["long", "short"] = "short"  # who writes a forced summary

    @model_validator(mode="after")
    def _fold_within_budget(self):
        if self.fold_after is not None and self.fold_after > self.segment_budget:
            raise ValueError(f"fold_after ({self.fold_after}) must not exceed segment_budget ({self.segment_budget})")
        if self.folds == "self" and self.fold_after is not None:
            raise ValueError("fold_after forces folds; with folds: self the writer decides (segment_budget stays "
                             "the hard cap), so set fold_after: null")
        return self

    @property
    def fold_at(self) -> int:
        """Think tokens of a segment after which its summary is due."""
        return self.segment_budget if self.fold_after is None else self.fold_after


class SolveConfig(Strict):
    """How the orchestrator runs one mode: who writes, what each agent sees, and the budgets."""

    router: Router = "alternate"
    memory: MemoryConfig = MemoryConfig()
    chunk_tokens: int = Field(default=64, ge=1)  # most new tokens of one think turn
    max_turns: int = Field(default=64, ge=1)
    max_long_tokens: int = Field(default=4096, ge=1)
    max_short_tokens: int = Field(default=4096, ge=1)
    timeout_s: float | None = Field(default=600.0, gt=0)  # wall time of one transcript; null: no limit
    concurrency: int = Field(default=64, ge=1)  # transcripts decoded together
    # The learned router's folder (router.json + router.safetensors, `longshort train-router` writes it)
    router_path: str | None = None

    @model_validator(mode="after")
    def _learned_router_has_a_file(self):
        if self.router == "learned" and self.router_path is None:
            raise ValueError("router 'learned' needs solve.router_path, the folder `longshort train-router` writes")
        return self


class ChunkingConfig(Strict):
    """How a long chain of thought is cut into thoughts (longshort/chunking.py)."""

    # A thought starts at a paragraph break or at one of these words opening a sentence (case-sensitive).
    markers: tuple[str, ...] = ("Wait", "Alternatively", "Hmm", "Let me", "But", "So", "However", "Actually",
                                "Hold on", "Therefore", "Now", "Okay")
    min_tokens: int = Field(default=16, ge=1)  # shorter thoughts join the next one
    max_tokens: int = Field(default=256, ge=2)  # longer ones are cut at sentence ends, else at token boundaries
    # Optional (the Long⊗Short way): this agent's model merges consecutive thoughts into blocks; off when null.
    group_by: Literal["long", "short"] | None = None
    group_window: int = Field(default=24, ge=2)  # thoughts shown to the model per request

    @model_validator(mode="after")
    def _room_to_split(self):
        if self.max_tokens < 2 * self.min_tokens:
            raise ValueError("max_tokens must be at least twice min_tokens, so an over-long thought can be cut "
                             "into pieces that are all within bounds")
        return self


class ScoringConfig(Strict):
    """Monte Carlo chunk importance (longshort/importance.py) and the ``mc`` router that uses it.

    A rollout from a prefix either answers at once (``answer``: at most ``answer_tokens``) or reasons on
    (``continue``: up to ``continue_tokens`` new tokens), in the format of ``agent``'s model: on the protocol a new
    turn opened with ``answer_prompt`` and graded from its answer tags; in its text format the thinking closed with
    the model's ``text.answer_prompt`` and graded from text (longshort/rollouts.py).
    """

    agent: Literal["long", "short"] = "long"
    rollouts: int = Field(default=8, ge=1)  # K per prefix
    policy: Literal["answer", "continue"] = "answer"
    answer_prompt: str = ""  # protocol path only
    answer_tokens: int = Field(default=32, ge=1)
    continue_tokens: int = Field(default=512, ge=1)
    temperature: float = Field(default=1.0, ge=0)
    top_p: float = Field(default=1.0, gt=0, le=1)
    # δ_i = exp(-context_decay · c_i), c_i the thinking tokens before thought i: a thought that pays off earlier, on
    # a shorter context, counts more (every later token attends to it and it shortens the chain it ends)
    context_decay: float = Field(default=0.001, ge=0)
    confidence: float = Field(default=0.95, gt=0, lt=1)  # of the Hoeffding intervals
    traces_per_batch: int = Field(default=16, ge=1)  # traces whose prefixes are rolled out together
    router_turns: int = Field(default=4, ge=0)  # turns per transcript the mc and learned routers decide
    router_fallback: Router = "handoff"  # decides the later turns, and when no candidate raises the chance

    @model_validator(mode="after")
    def _fallback_decides_alone(self):
        if not _routers()[self.router_fallback].standalone:
            raise ValueError(f"router_fallback cannot be '{self.router_fallback}', which needs a fallback itself; "
                             "use one that decides from the transcript alone: "
                             + ", ".join(sorted(n for n, r in _routers().items() if r.standalone)))
        return self


class ColdstartConfig(Strict):
    """Cold-start data synthesis (data/coldstart.py) and SFT of both agents on it (rl/coldstart.py)."""

    out_dir: str = "../runs/coldstart"
    traces: int = Field(default=600, ge=1)  # tiny world: training problems whose long traces are synthesized from
    # A thought whose importance S = ΔAcc · δ exceeds it is the long agent's, the rest the short's. Positive, so that
    # δ matters: a thought far into the trace needs a larger gain (ΔAcc > threshold / δ); at 0 only sign(ΔAcc)
    # counts.
    threshold: float = Field(default=0.1, ge=0, le=1)
    # The short agent's thoughts rewritten concisely by the short model (``short``), or kept verbatim (``keep``). A
    # rewrite cut by rewrite_tokens, empty, no shorter than its source, or dropping a number the next thought uses is
    # rejected: the thought stays as it was, counted in the manifest. ``steps`` (tiny-world traces only, whose short
    # model cannot follow a prompt): each run of short thoughts becomes one plain step per operation it carries out,
    # so checks, hesitation and restarts vanish (data/synthetic.steps_only_rewrite).
    rewrite: Literal["keep", "short", "steps"] = "short"
    # {question}: the problem; {before}: the thoughts before this one (the latest that fit rewrite_context tokens);
    # {text}: the thought to rewrite
    rewrite_prompt: str = ("Problem:\n{question}\n\nReasoning so far:\n{before}\n\nNext step:\n{text}\n\n"
                           "Rewrite the next step as concisely as possible. Keep every number and result it states, "
                           "and do not go beyond it.")
    rewrite_tokens: int = Field(default=256, ge=1)  # a rewrite that reaches it is rejected
    rewrite_context: int = Field(default=2048, ge=0)  # tokens of preceding thoughts the rewriter sees
    fold_share: float = Field(default=0.5, ge=0, le=1)  # traces also written folded, InftyThink style
    # the memory the summaries are written under and the folded transcripts train under: a Fold policy, or
    # unfold-summaries (Accordion-Thinking's SFT: summaries inline, nothing dropped, so Fold is new at first)
    fold_policy: SummarizingPolicy = "fold-restart"
    segment_tokens: int = Field(default=40, ge=1)  # a segment closes at the first thought reaching it (= solve.memory.fold_after)
    summarizer: Literal["long", "short"] = "short"  # the model that writes the summaries' text
    summary_tokens: int = Field(default=24, ge=1)
    # 0: each summary is the summarizer's greedy one; above 0, sampled (seeded by coldstart.seed), so the data keeps
    # the summarizer's spread of summaries, good and poor, for RL to choose from
    summary_temperature: float = Field(default=0.0, ge=0)
    # A summarizer with format: text is asked in a new chat with this prompt (cumulative, as InftyThink's: {summary}
    # is the previous summary, {reasoning} the new segment, {question} the problem); one with format: protocol
    # writes a protocol summary turn after what it sees under fold_policy (the previous summary included).
    summary_prompt: str = ("Problem:\n{question}\n\nSummary of the reasoning so far:\n{summary}\n\n"
                           "New reasoning:\n{reasoning}\n\nUpdate the summary: in a few sentences, state everything "
                           "established so far (the summary and the new reasoning together), keeping every "
                           "intermediate result.")
    keep_wrong: bool = False  # keep traces whose own final answer ("prediction") is not the gold answer
    backend: Literal["local", "openrlhf"] = "local"
    long_steps: int = Field(default=300, ge=1)  # local backend
    short_steps: int = Field(default=300, ge=1)
    batch_size: int = Field(default=32, ge=1)  # global batch on OpenRLHF
    learning_rate: float = Field(default=1e-3, gt=0)
    checkpoint_every: int = Field(default=100, ge=1)
    seed: int = Field(default=0, ge=0)
    # OpenRLHF backend
    num_gpus: int = Field(default=8, ge=1)
    micro_batch_size: int = Field(default=2, ge=1)
    max_epochs: int = Field(default=2, ge=1)
    max_len: int = Field(default=16384, ge=16)
    zero_stage: int = Field(default=2, ge=0, le=3)
    attn_implementation: str = "flash_attention_2"

    @model_validator(mode="after")
    def _prompts_name_known_fields(self):
        for key, fields, needed in (("rewrite_prompt", ("question", "before", "text"), "text"),
                                    ("summary_prompt", ("question", "summary", "reasoning"), "reasoning")):
            _check_template(key, getattr(self, key), fields, needed)
        return self


class RewardConfig(Strict):
    """The reward of one transcript, shared by the pair (rl/rewards.py). Costs are per generated token."""

    correct: float = 1.0  # a right final answer
    wrong: float = 0.0  # an answer the grader marks wrong
    invalid: float = -0.5  # no answer: the protocol was broken (malformed), or a budget or the clock ran out
    long_token_cost: float = Field(default=0.004, ge=0)
    short_token_cost: float = Field(default=0.001, ge=0)
    fold_cost: float = Field(default=0.0, ge=0)
    # A Python file defining ``reward(transcripts) -> list[float]``: its value replaces correct / wrong.
    function: str | None = None


class RLConfig(Strict):
    """Synergy RL of both agents (rl/synergy.py): the pair solves, both are rewarded, each learns its own tokens."""

    out_dir: str = "../runs/rl"
    init: str | None = None  # a folder holding long/ and short/ (the cold-start run) to start from; null: the models above
    # JSONL of training problems (question, answer, kind); null: the tiny world's training problems that cold-start
    # did not use
    problems: str | None = None
    backend: Literal["local", "openrlhf"] = "local"
    steps: int = Field(default=100, ge=1)  # local backend (OpenRLHF: rounds × 2 × alternate_every)
    problems_per_step: int = Field(default=16, ge=1)
    samples_per_problem: int = Field(default=8, ge=2)  # the group whose rewards are normalized
    router: Router = "handoff"
    # the rollouts' memory policy; "mix" (Mix-RL): each rollout under one of ``mix``, drawn at random
    policy: RolloutPolicy = "unfold"
    mix: tuple[MemoryPolicy, ...] = ("fold-append", "unfold-summaries")
    # Every ``gap_every`` steps (and before the first), the pair solves ``gap_problems`` held-out problems greedily
    # under Fold and under Unfold (``gap_policies``); the accuracy gap is a metric and a plot. 0: never.
    gap_every: int = Field(default=0, ge=0)
    gap_problems: int = Field(default=50, ge=1)
    gap_policies: tuple[FoldPolicy, MemoryPolicy] = ("fold-append", "unfold-summaries")
    heldout: str | None = None  # JSONL of held-out problems for the gap; null: the tiny world's held-out set
    temperature: float = Field(default=1.0, gt=0)  # of the rollouts; log-probs are of the raw distribution
    train: Literal["joint", "alternate"] = "joint"  # both agents every step, or one per round (OpenRLHF: alternate)
    alternate_every: int = Field(default=10, ge=1)  # steps per round under ``alternate``
    advantage: Estimator = "grpo"  # rl/rewards.py's ESTIMATORS
    learning_rate: float = Field(default=1e-4, gt=0)
    clip: float = Field(default=0.2, gt=0)  # of the probability ratio
    updates_per_step: int = Field(default=1, ge=1)  # optimizer steps on each step's rollouts
    max_grad_norm: float = Field(default=1.0, gt=0)  # gradients are clipped to this norm
    kl_coef: float = Field(default=0.0, ge=0)  # KL to the starting (SFT) model, k3 estimator; 0 = off
    # Local backend: a think turn's tokens also get this times the change it made to the chance of a right answer
    # (MC importance, `scoring.rollouts` answer rollouts before and after it); 0 = off
    turn_credit: float = Field(default=0.0, ge=0)
    reward: RewardConfig = RewardConfig()
    micro_batch_size: int = Field(default=8, ge=1)  # samples per forward/backward pass
    checkpoint_every: int = Field(default=10, ge=1)
    seed: int = Field(default=0, ge=0)
    # OpenRLHF backend: ``rounds`` rounds, each training the long and then the short agent for ``alternate_every``
    # steps while the other one is served frozen (its model config's backend and num_gpus)
    num_gpus: int = Field(default=7, ge=1)  # of the agent being trained: DeepSpeed and vLLM colocated, an engine a GPU
    vllm_memory_utilization: float = Field(default=0.6, gt=0, le=1)
    max_len: int = Field(default=8192, ge=16)  # prompt + the whole transcript
    zero_stage: int = Field(default=2, ge=0, le=3)
    attn_implementation: str = "flash_attention_2"
    rounds: int = Field(default=2, ge=1)
    # the longest wait for the partner's actor to start, or for one partner turn; past it the job fails
    partner_timeout_s: float = Field(default=600.0, gt=0)

    @property
    def policies(self) -> tuple[str, ...]:
        """The memory policies the rollouts run under: ``policy``, or under Mix-RL those of ``mix``."""
        return self.mix if self.policy == "mix" else (self.policy,)


class RouterTrainingConfig(Strict):
    """`longshort train-router`: the pair solves training problems under the gold ``mc-oracle`` router, whose
    decisions label the states, and a small classifier learns them (longshort/router_model.py); it is saved to
    ``solve.router_path``."""

    agents: str | None = None  # a folder holding long/ and short/ (a cold-start run) to label with; null: the models as set
    problems: int = Field(default=400, ge=2)  # training problems solved under mc-oracle (rl.problems, else the tiny world's)
    heldout_share: float = Field(default=0.2, gt=0, lt=1)  # of those problems, whose states only score the router
    window: int = Field(default=32, ge=1)  # last context tokens the classifier sees
    embed: int = Field(default=16, ge=1)  # width of each token's embedding
    hidden: int = Field(default=64, ge=1)
    steps: int = Field(default=1500, ge=1)
    batch_size: int = Field(default=256, ge=1)
    learning_rate: float = Field(default=3e-3, gt=0)
    weight_decay: float = Field(default=1e-4, ge=0)
    seed: int = Field(default=0, ge=0)


class EvalConfig(Strict):
    """Modes of eval/run_benchmarks.py: ``longshort`` runs once per router × memory policy listed here."""

    routers: tuple[Router, ...] = ("alternate", "handoff")
    policies: tuple[MemoryPolicy, ...] = ("unfold", "fold-restart", "fold-append")
    pass_k: tuple[Annotated[int, Field(ge=1)], ...] = (1, 4)  # pass@k reported where n >= k
    viewer_transcripts: int = Field(default=3, ge=0)  # per benchmark × mode, in report.html
    # The before/after tables of cold-start and RL: the first ``--eval-limit`` problems of this benchmark
    # (data/benchmarks.py), read from ``data``/<benchmark>.jsonl when set, else from the hub; null: the tiny world's
    # held-out set (``synthetic``) when the config has a ``tiny`` section.
    heldout: str | None = None
    data: str | None = None


class RayConfig(Strict):
    address: str | None = None  # None starts a local Ray on 127.0.0.1
    num_cpus: int | None = Field(default=None, ge=1)


class Config(Strict):
    long: ModelConfig
    short: ModelConfig
    sampling: SamplingConfig = SamplingConfig()
    solve: SolveConfig = SolveConfig()
    protocol: ProtocolConfig = ProtocolConfig()
    tiny: TinyWorldConfig | None = None
    chunking: ChunkingConfig = ChunkingConfig()
    scoring: ScoringConfig = ScoringConfig()
    eval: EvalConfig = EvalConfig()
    coldstart: ColdstartConfig = ColdstartConfig()
    rl: RLConfig = RLConfig()
    router_training: RouterTrainingConfig = RouterTrainingConfig()
    ray: RayConfig = RayConfig()
    # Free-form baselines (mode ``free:NAME``): models that answer alone in their own text format, such as the
    # DeepSeek-R1-Distill model that wrote the traces, evaluated beside the pair.
    baselines: dict[str, ModelConfig] = {}
    source: str = ""  # the file this config was read from

    @model_validator(mode="after")
    def _baselines_speak_text(self):
        for name, model in self.baselines.items():
            if model.format != "text":
                raise ValueError(f"baselines.{name}: a free-form baseline answers in its own format; set format: text")
            if not name or not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
                raise ValueError(f"baselines: '{name}' is not a usable mode name (letters, digits, '-', '_', '.')")
        return self

    def model(self, agent: str) -> ModelConfig:
        return {"long": self.long, "short": self.short}[agent]

    def with_model_paths(self, paths: dict[str, str]) -> "Config":
        """This config with the named agents at trained checkpoints (a cold-start or RL run's), which speak the
        protocol whatever format their base models had."""
        return self.model_copy(update={agent: self.model(agent).model_copy(update={"path": str(path),
                                                                                   "format": "protocol"})
                                       for agent, path in paths.items()})


# Config keys that hold a path, as (section, ..., key): relative ones resolve against the config's folder.
# "*" stands for every entry of a mapping.
PATH_KEYS = (("long", "path"), ("short", "path"), ("baselines", "*", "path"), ("tiny", "out_dir"),
             ("coldstart", "out_dir"), ("rl", "out_dir"), ("rl", "init"), ("rl", "problems"), ("rl", "heldout"),
             ("rl", "reward", "function"), ("eval", "data"), ("solve", "router_path"), ("router_training", "agents"))


def _resolve_paths(data: dict, base: Path) -> dict:
    for *sections, key in PATH_KEYS:
        parts = [data]
        for section in sections:
            parts = [p for part in parts if isinstance(part, dict)
                     for p in (part.values() if section == "*" else [part.get(section)])]
        for part in parts:
            if isinstance(part, dict) and isinstance(part.get(key), str):
                part[key] = _resolve(part[key], base)
    return data


def _resolve(path: str, base: Path) -> str:
    """Local paths resolve against the config's folder; hub names (``org/name`` not on disk) stay as they are."""
    p = Path(path).expanduser()
    if p.is_absolute():
        return str(p)
    if path.startswith(".") or (base / p).exists():
        return str((base / p).resolve())
    return path


def override(config: Config, changes: dict[str, object]) -> Config:
    """``config`` with command-line overrides, ``{"solve.memory.policy": "fold-append", "--flag": ...}`` keyed by
    the dotted key and named by the flag after a space (``"solve.router --router"``), validated as the file was:
    a bad value is an error naming the flag and the key. ``None`` values are not overrides."""
    data = config.model_dump()
    flags = {}
    for spec, value in changes.items():
        if value is None:
            continue
        key, _, flag = spec.partition(" ")
        *sections, leaf = key.split(".")
        part = data
        for section in sections:
            part = part[section]
        part[leaf] = value
        flags[key] = flag or key
    return _validated(data, "", lambda key: f"{flags[key]} ({key})" if key in flags else f"'{key}'")


def _validated(data: dict, where: str, name) -> Config:
    """``Config.model_validate(data)``, its errors as one ConfigError: ``where`` first, each key as ``name(key)``."""
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        problems = []
        for err in e.errors():
            key = ".".join(str(part) for part in err["loc"])
            if err["type"] == "extra_forbidden":
                problems.append(f"unknown key '{key}'")
            else:
                problems.append(f"{name(key)}: {err['msg'].removeprefix('Value error, ')}")
        raise ConfigError(where + "; ".join(problems)) from None


class _UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, except that a key given twice in one mapping is an error, not a silent replacement."""

    def construct_mapping(self, node, deep=False):
        lines: dict = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) and key in lines:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key '{key}' (first on line {lines[key]})", key_node.start_mark)
            lines[key] = key_node.start_mark.line + 1
        return super().construct_mapping(node, deep)


def load_config(path: str | Path) -> Config:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise ConfigError(f"cannot read config {path}: {e.strerror or e}") from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f"{path}, line {mark.line + 1}" if mark else str(path)
        problem = getattr(e, "problem", None) or str(e)
        if not isinstance(e, yaml.constructor.ConstructorError):
            problem = f"not valid YAML ({problem})"
        raise ConfigError(f"{where}: {problem}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config is a mapping of keys to values, got {type(data).__name__}")
    data = _resolve_paths(data, path.resolve().parent)
    data["source"] = str(path)
    return _validated(data, f"{path}: ", lambda key: f"'{key}'")


def at_least(low: int):
    """An argparse type: an integer no smaller than ``low``, so a bad count on a command line is refused at parse
    time, as the same count in a config file is at load."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got '{text}'") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"must be at least {low}, got {value}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse
