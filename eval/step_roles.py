"""Where a tiny long model fails: teacher-forced accuracy on each token of the steps of held-out long traces.

    python eval/step_roles.py [--config configs/tiny.yaml] [--limit 150] [--seed N]
    python eval/step_roles.py --every 100 [--out runs/learning-curve]     (the long model's learning curve)

A long step is ``opK: OPB. A OP B=R.``: its label (which line comes next), the operation and operand copied from
the question's line ``opK:``, the value carried from the previous step, and the result, a lookup in the table of
``A OP B`` modulo m. Each role's accuracy is the share of held-out steps whose token the model ranks first given the
true trace before it, so a model that copies but has not learnt the table shows it at ``result``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROLES = ("label", "op", "operand", "dot", "space", "value", "op again", "operand again", "equals", "result", "end")


def step_marks(transcript, chunks) -> tuple[list[int], list[tuple[int, str]]]:
    """The transcript's ids, and (position, role) for each token of each of its steps."""
    ids, marks = list(transcript.prompt_ids), []
    for turn, chunk in zip(transcript.turns, chunks):
        if chunk.label == "step":  # one token per role: labels are one token, digits are split
            start = len(ids) + len(turn.forced_ids)
            marks += [(start + k, role) for k, role in enumerate(ROLES)]
        ids += turn.ids
    return ids, marks


def held_out_steps(config, tokenizer, limit: int):
    """(ids, marks) of each of the first ``limit`` held-out long traces, as the tiny world's transcripts hold them."""
    from longshort.data.synthetic import Paragraph
    from longshort.data.tiny_world import as_problem, chunk_transcript, from_meta
    from longshort.protocol import Protocol

    out = Path(config.tiny.out_dir)
    protocol = Protocol.from_tokenizer(config.protocol, tokenizer, config.long.path)
    problems = [json.loads(line) for line in open(out / "heldout.jsonl")][:limit]
    traces = [json.loads(line) for line in open(out / "heldout_traces.jsonl")][:limit]
    for index, (row, trace) in enumerate(zip(problems, traces)):
        synthetic = from_meta(row["meta"])
        chunks = [Paragraph(**c) for c in trace["chunks"]]
        yield step_marks(chunk_transcript(as_problem(synthetic, index), synthetic, chunks, tokenizer, protocol), chunks)


def role_accuracy(config, limit: int) -> dict[str, float]:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(config.long.path)
    model = AutoModelForCausalLM.from_pretrained(config.long.path).eval()
    return accuracy(model, list(held_out_steps(config, tokenizer, limit)))


def accuracy(model, steps) -> dict[str, float]:
    """Per role, the share of ``steps`` (``held_out_steps``) whose token ``model`` ranks first."""
    import torch

    hits = {role: [0, 0] for role in ROLES}
    for ids, marks in steps:
        with torch.no_grad():
            predicted = model(torch.tensor([ids])).logits[0].argmax(-1).tolist()
        for position, role in marks:
            hits[role][0] += predicted[position - 1] == ids[position]
            hits[role][1] += 1
    return {role: right / total for role, (right, total) in hits.items() if total}


def learning_curve(config, every: int, limit: int, out: Path, seed: int | None = None, print_row=print) -> list[dict]:
    """Build ``config``'s tiny world into ``out`` and measure each role's accuracy every ``every`` steps of the long
    model's training: where a skill is learnt, and whether the schedule lets it finish."""
    from transformers import AutoTokenizer

    from longshort.config import override
    from longshort.data.tiny_world import build

    config = override(config, {"tiny.out_dir": str(out), "long.path": str(out / "long"),
                               "short.path": str(out / "short"), "tiny.seed --seed": seed})
    rows: list[dict] = []
    steps: list = []

    def probe(model, step: int, loss: float) -> None:
        if (step + 1) % every:
            return
        if not steps:
            steps.extend(held_out_steps(config, AutoTokenizer.from_pretrained(config.long.path), limit))
        model.eval()
        rows.append({"step": step + 1, "loss": loss} | accuracy(model, steps))
        model.train()
        print_row(rows[-1])

    build(config, force=True, log=lambda *_: None, probe=probe)
    return rows


def main(argv: list[str] | None = None) -> int:
    from longshort.config import load_config

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="configs/tiny.yaml", help="its tiny world and long model")
    parser.add_argument("--limit", type=int, default=150, help="held-out traces")
    parser.add_argument("--every", type=int, default=None,
                        help="build the config's world into --out and measure every EVERY steps of the long model's "
                             "training (its learning curve) instead of the trained model once")
    parser.add_argument("--out", default="runs/learning-curve", help="where --every builds its world")
    parser.add_argument("--seed", type=int, default=None,
                        help="the world of this seed (as `longshort tiny --seeds` builds it), or with --every the "
                             "seed of the world built")
    args = parser.parse_args(argv)
    config = load_config(args.config)
    if config.tiny is not None and config.tiny.variables != 1:
        parser.error(f"{args.config}: the roles are those of a one-variable step (tiny.variables is "
                     f"{config.tiny.variables})")
    if args.every:
        print("| step | loss | " + " | ".join(ROLES) + " |\n|---:|---:|" + "---:|" * len(ROLES))
        learning_curve(config, args.every, args.limit, Path(args.out), args.seed, lambda row: print(
            f"| {row['step']} | {row['loss']:.3f} | " + " | ".join(f"{row[r]:.1%}" for r in ROLES) + " |", flush=True))
        return 0
    if args.seed is not None:
        from longshort.data.tiny_world import seed_world

        config = seed_world(config, args.seed)
    shares = role_accuracy(config, args.limit)
    print("| role | " + " | ".join(shares) + " |\n|---|" + "---:|" * len(shares))
    print("| teacher-forced accuracy | " + " | ".join(f"{a:.1%}" for a in shares.values()) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
