"""The learned router's classifier: what it sees of a transcript, its arithmetic, and its file.

It predicts the ``mc-oracle`` decision for a transcript state (long, short, or none: leave the turn to the
fallback router) without calling a model. It sees the last ``window`` token ids of the context the next writer
would see (``render``), each embedded with its position, and a few counters of the transcript (``COUNTERS``);
a one-hidden-layer MLP maps them to three logits. One forward pass decides every transcript of a round.

A router is a folder: ``router.safetensors`` (the weights, no pickle) and ``router.json`` (the feature settings,
the fingerprint of the tokenizer and protocol it was trained for, and how it was trained and scored). Loading
checks both against the agents, so a router cannot silently read ids that mean something else.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

from longshort.memory import render
from longshort.transcript import Transcript

FORMAT = 1
CLASSES = ("long", "short", "none")  # "none": no agent's chunk raises the chance; the fallback router decides
COUNTERS = ("think_turns", "long_turns", "short_turns", "long_tokens", "short_tokens", "last_long", "last_short",
            "handed_back", "folds", "context")


class RouterFileError(ValueError):
    """A router folder or label file that cannot be used with these agents, the file named."""


def fingerprint(tokenizer, protocol) -> str:
    """A short hash of the tokenizer's vocabulary and the protocol's tag ids: what token ids mean."""
    text = json.dumps([sorted(tokenizer.get_vocab().items()), sorted(protocol.ids.items())])
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def state_features(state: Transcript, protocol, window: int, pad: int) -> tuple[list[int], list[float]]:
    """The last ``window`` ids of the next writer's context (left-padded with ``pad``) and the ``COUNTERS``."""
    rendered = render(state)
    context = rendered[-window:]
    thinks = [t for t in state.turns if t.kind == "think"]
    last = thinks[-1] if thinks else None
    shorts = [t for t in thinks if t.agent == "short"]
    counters = [
        len(thinks),
        sum(t.agent == "long" for t in thinks),
        len(shorts),
        state.tokens("long"),
        state.tokens("short"),
        float(last is not None and last.agent == "long"),
        float(last is not None and last.agent == "short"),
        float(bool(shorts) and shorts[-1].token_ids[-1:] == [protocol.ids["handback"]]),
        state.folds,
        len(rendered),
    ]
    return [pad] * (window - len(context)) + context, [float(c) for c in counters]


def initial_weights(vocab: int, window: int, embed: int, hidden: int, seed: int) -> dict:
    """Random weights for ``vocab`` token ids plus the pad (id ``vocab``); counters standardized as given later."""
    import torch

    g = torch.Generator().manual_seed(seed)
    inputs = window * embed + len(COUNTERS)
    return {
        "embed": torch.randn(vocab + 1, embed, generator=g) * 0.1,
        "position": torch.randn(window, embed, generator=g) * 0.1,
        "counter_mean": torch.zeros(len(COUNTERS)),
        "counter_std": torch.ones(len(COUNTERS)),
        "w1": torch.randn(inputs, hidden, generator=g) / inputs ** 0.5,
        "b1": torch.zeros(hidden),
        "w2": torch.randn(hidden, len(CLASSES), generator=g) / hidden ** 0.5,
        "b2": torch.zeros(len(CLASSES)),
    }


def logits(weights: dict, ids, counters):
    """[batch, window] ids and [batch, counters] floats -> [batch, classes] logits."""
    import torch

    tokens = weights["embed"][ids] + weights["position"]
    scaled = (counters - weights["counter_mean"]) / weights["counter_std"]
    hidden = torch.relu(torch.cat([tokens.flatten(1), scaled], 1) @ weights["w1"] + weights["b1"])
    return hidden @ weights["w2"] + weights["b2"]


class RouterModel:
    """A loaded router: ``predict`` gives each state's decision."""

    def __init__(self, weights: dict, meta: dict, protocol):
        self.weights, self.meta, self.protocol = weights, meta, protocol

    def predict(self, states: list[Transcript]) -> list[str | None]:
        import torch

        window, pad = self.meta["window"], self.meta["vocab"]
        features = [state_features(s, self.protocol, window, pad) for s in states]
        with torch.no_grad():
            scores = logits(self.weights, torch.tensor([f[0] for f in features]),
                            torch.tensor([f[1] for f in features]))
        return [None if CLASSES[c] == "none" else CLASSES[c] for c in scores.argmax(1).tolist()]


def save_router(folder: str | Path, weights: dict, meta: dict) -> Path:
    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in weights.items()}, str(folder / "router.safetensors"))
    (folder / "router.json").write_text(json.dumps({"format": FORMAT, **meta}, indent=2))
    return folder


def load_router(folder: str | Path | None, tokenizer, protocol) -> RouterModel:
    """The router in ``folder``, checked against the agents' tokenizer and protocol and against its own settings."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if folder is None:
        raise RouterFileError("router 'learned' needs solve.router_path: the folder `longshort train-router` "
                              "writes")
    meta_path, weights_path = Path(folder) / "router.json", Path(folder) / "router.safetensors"
    for path in (meta_path, weights_path):
        if not path.is_file():
            raise RouterFileError(f"{path}: no such file; train a router there with `longshort train-router`")
    try:
        meta = json.loads(meta_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise RouterFileError(f"{meta_path}: not a router description ({e})") from None
    if (not isinstance(meta, dict) or meta.get("format") != FORMAT or tuple(meta.get("counters", ())) != COUNTERS
            or not all(isinstance(meta.get(key), int) for key in ("vocab", "window", "embed", "hidden"))):
        raise RouterFileError(f"{meta_path}: not a router of format {FORMAT} (vocab, window, embed, hidden, and the "
                              f"counters {', '.join(COUNTERS)})")
    expected = fingerprint(tokenizer, protocol)
    if meta.get("fingerprint") != expected:
        raise RouterFileError(f"{meta_path}: trained for another tokenizer or protocol (fingerprint "
                              f"{meta.get('fingerprint')}, these agents {expected})")
    try:
        weights = load_file(str(weights_path))
    except (SafetensorError, OSError) as e:
        raise RouterFileError(f"{weights_path}: not a safetensors file ({e})") from None
    vocab = len(tokenizer)
    shapes = {name: tuple(w.shape) for name, w in initial_weights(vocab, meta["window"], meta["embed"],
                                                                  meta["hidden"], 0).items()}
    found = {name: tuple(w.shape) for name, w in weights.items()}
    if meta.get("vocab") != vocab or found != shapes:
        wrong = sorted(n for n in shapes.keys() | found.keys() if shapes.get(n) != found.get(n))
        raise RouterFileError(f"{weights_path}: its weights do not fit a tokenizer of {vocab} tokens with window "
                              f"{meta['window']}, embed {meta['embed']}, hidden {meta['hidden']} "
                              f"(mismatched: {', '.join(wrong) or 'vocab'})")
    return RouterModel(weights, meta, protocol)
