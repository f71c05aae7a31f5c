"""Training the learned router (``longshort train-router``): gold Monte Carlo decisions label training states, a
small classifier learns them, and its agreement with the gold decision on held-out problems is measured.

Labels are training data, read with the answer key. The pair (``router_training.agents``, or the models as set)
solves the first ``router_training.problems`` training problems (``rl.problems``, else the tiny world's that
cold-start did not use) under the ``mc-oracle`` router; each of its decisions (long, short, or none: leave the
turn to the fallback router) is appended to ``labels.jsonl`` with the state's features as it is made, and each
finished transcript to ``label-transcripts.jsonl``, so a rerun solves only the problems left (a decision made
again after a kill is the same decision, the seeds being fixed; the last copy counts).

The last ``heldout_share`` of those problems only score the router: it is trained on the states of the others,
and its agreement with the gold decision on the held-out states is printed and stored in ``router.json`` beside
that of always predicting the commonest decision. Everything goes to ``solve.router_path``; a folder labelled
with another tokenizer, protocol, agents or settings is refused unless ``--overwrite``.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

from longshort.config import Config
from longshort.protocol import AGENTS
from longshort.router_model import CLASSES, COUNTERS, RouterFileError, fingerprint

LABEL_SETTINGS = ("window",)  # of router_training: settings the labels depend on (the rest only shape training)


def labelling_config(config: Config) -> Config:
    """``config`` with the agents the labels are made with: ``router_training.agents``' long/ and short/ folders,
    else the models as set."""
    agents = config.router_training.agents
    if agents is None:
        return config
    paths = {agent: Path(agents) / agent for agent in AGENTS}
    missing = [str(p) for p in paths.values() if not (p / "config.json").is_file()]
    if missing:
        raise FileNotFoundError(f"{config.source}: router_training.agents holds no trained agent at "
                                f"{', '.join(missing)} (run `make train-coldstart` first, or set it to null)")
    return config.with_model_paths(paths)


def claim_labels(config: Config, hosted, out: Path, overwrite: bool):
    """Claim ``out`` for labels of these agents and settings (held until the returned claim is released); labels of
    another tokenizer or protocol are refused with their file named."""
    from longshort.runs import claim, fingerprint as model_fingerprint

    found = fingerprint(hosted.tokenizer, hosted.protocol)
    marker = out / "run.json"
    if marker.exists() and not overwrite:
        before = json.loads(marker.read_text()).get("fingerprint")
        if before != found:
            raise RouterFileError(f"{out / 'labels.jsonl'}: labels from another tokenizer or protocol (fingerprint "
                                  f"{before}, these agents {found}); pass --overwrite or set another "
                                  "solve.router_path")
    cfg = config.router_training
    spec = {"fingerprint": found, "models": {a: model_fingerprint(config.model(a).path) for a in AGENTS},
            "solve": config.solve.model_dump(exclude={"router", "router_path"}), "scoring": config.scoring.model_dump(),
            "sampling": config.sampling.model_dump(), **{key: getattr(cfg, key) for key in LABEL_SETTINGS}}
    return claim(out, spec, "router-labelling", folder=True, overwrite=overwrite,
                 hint="pass --overwrite or set another solve.router_path")


def label(config: Config, hosted, problems, out: Path) -> None:
    """Solve ``problems`` under ``mc-oracle`` (the gold answers read here are training data), appending each
    decision with its state's features to ``labels.jsonl``."""
    from longshort.eval.modes import solve_config
    from longshort.jsonl import Appender, completed_keys
    from longshort.router_model import state_features
    from longshort.runner import orchestrator, solve_file

    orch = orchestrator(config, hosted, solve_config(config, "mc-oracle", config.solve.memory.policy))
    window, pad = config.router_training.window, len(hosted.tokenizer)
    completed_keys(out / "labels.jsonl", label_key)  # cuts the partial last line a killed run may have left
    writer = Appender(out / "labels.jsonl")

    def record(state, pick, gains) -> None:
        ids, counters = state_features(state, hosted.protocol, window, pad)
        writer.write({"problem": state.problem.id, "sample": state.sample, "turn": len(state.turns),
                      "label": pick or "none", "gains": gains, "ids": ids, "counters": counters})

    orch.router.on_decision = record
    try:
        solve_file(orch, problems, out / "label-transcripts.jsonl", desc="router labels (mc-oracle)")
    finally:
        writer.close()


def label_key(row: dict) -> tuple:
    return row["problem"], row["sample"], row["turn"]


def read_labels(path: Path, problems: set[str]) -> list[dict]:
    """The labelled states of ``problems``, one per (problem, sample, turn): the last copy of each."""
    rows = {}
    with open(path) as f:
        for line in f:
            row = json.loads(line)
            if row["problem"] in problems:
                rows[label_key(row)] = row
    return list(rows.values())


def tensors(rows: list[dict]):
    import torch

    return (torch.tensor([r["ids"] for r in rows]), torch.tensor([r["counters"] for r in rows]),
            torch.tensor([CLASSES.index(r["label"]) for r in rows]))


def train(rows: list[dict], vocab: int, config: Config) -> dict:
    """Classifier weights fit to ``rows`` by AdamW on the cross-entropy, counters standardized over the rows."""
    import torch
    from tqdm import tqdm

    from longshort.router_model import initial_weights, logits

    cfg = config.router_training
    ids, counters, labels = tensors(rows)
    weights = initial_weights(vocab, cfg.window, cfg.embed, cfg.hidden, cfg.seed)
    weights["counter_mean"] = counters.mean(0)
    weights["counter_std"] = counters.std(0, unbiased=False).clamp_min(1e-3)
    learned = [w.requires_grad_() for name, w in weights.items() if not name.startswith("counter_")]
    optimizer = torch.optim.AdamW(learned, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    g = torch.Generator().manual_seed(cfg.seed)
    for _ in tqdm(range(cfg.steps), desc="train router", file=sys.stderr, mininterval=1.0):
        batch = torch.randint(len(rows), (min(cfg.batch_size, len(rows)),), generator=g)
        loss = torch.nn.functional.cross_entropy(logits(weights, ids[batch], counters[batch]), labels[batch])
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    return {name: w.detach() for name, w in weights.items()}


def agreement(weights: dict, rows: list[dict]) -> dict:
    """How often the classifier's decision is the gold one on ``rows``, beside always the commonest gold decision
    (of these rows), and the counts of (gold, predicted) pairs."""
    import torch

    from longshort.router_model import logits

    ids, counters, labels = tensors(rows)
    with torch.no_grad():
        predicted = logits(weights, ids, counters).argmax(1)
    commonest = max(range(len(CLASSES)), key=lambda c: int((labels == c).sum()))
    return {
        "states": len(rows),
        "agreement": round(float((predicted == labels).float().mean()), 4),
        "commonest": CLASSES[commonest],
        "commonest_agreement": round(float((labels == commonest).float().mean()), 4),
        "confusion": {f"{CLASSES[g]}->{CLASSES[p]}": int(((labels == g) & (predicted == p)).sum())
                      for g in range(len(CLASSES)) for p in range(len(CLASSES))},
    }


def run(config: Config, overwrite: bool = False, log=print) -> dict:
    """``longshort train-router``: the agents of ``router_training.agents`` on the configured training problems."""
    from longshort.rl.experience import training_problems
    from longshort.runner import start

    config = labelling_config(config)
    problems = training_problems(config)[: config.router_training.problems]
    return train_router(config, start(config, use_ray=False), problems, overwrite, log)


def train_router(config: Config, hosted, problems, overwrite: bool = False, log=print) -> dict:
    """Label states of ``problems`` (training data: their gold answers are read), train, score and save the learned
    router; returns its ``router.json`` record."""
    from longshort.router_model import save_router

    if config.solve.router_path is None:
        raise ValueError(f"{config.source}: set solve.router_path, the folder the learned router is written to")
    out, cfg = Path(config.solve.router_path), config.router_training
    with claim_labels(config, hosted, out, overwrite):
        label(config, hosted, problems, out)
    heldout_ids = {p.id for p in problems[round(len(problems) * (1 - cfg.heldout_share)):]}
    rows = read_labels(out / "labels.jsonl", {p.id for p in problems})
    fit, heldout = [r for r in rows if r["problem"] not in heldout_ids], [r for r in rows if r["problem"] in heldout_ids]
    if not fit or not heldout:
        raise ValueError(f"{out / 'labels.jsonl'}: {len(fit)} training and {len(heldout)} held-out states labelled; "
                         "both need some (raise router_training.problems or scoring.router_turns)")
    vocab = len(hosted.tokenizer)
    weights = train(fit, vocab, config)
    record = {
        "fingerprint": fingerprint(hosted.tokenizer, hosted.protocol), "vocab": vocab,
        "window": cfg.window, "embed": cfg.embed, "hidden": cfg.hidden, "counters": list(COUNTERS),
        "classes": list(CLASSES), "agents": {a: config.model(a).path for a in AGENTS},
        "labels": {"router": "mc-oracle", "problems": len(problems), "heldout_problems": len(heldout_ids),
                   "states": len(rows), "router_turns": config.scoring.router_turns},
        "training": agreement(weights, fit), "heldout": agreement(weights, heldout),
    }
    save_router(out, weights, record)
    held = record["heldout"]
    log(f"learned router in {out}: held-out agreement with the gold mc decision {held['agreement']:.1%} on "
        f"{held['states']} states of {len(heldout_ids)} problems (always '{held['commonest']}': "
        f"{held['commonest_agreement']:.1%}); training states {record['training']['agreement']:.1%}")
    return record
