"""The learned router's file: what it sees, that it decides as saved, and the router files it refuses, by name."""
from __future__ import annotations

import json

import pytest

from longshort.config import ConfigError, load_config
from longshort.problem import Problem
from longshort.protocol import Protocol
from longshort.router_model import (COUNTERS, RouterFileError, fingerprint, initial_weights, load_router, logits,
                                    save_router, state_features)
from longshort.transcript import Transcript, Turn


def save(folder, tokenizer, protocol, **changes):
    settings = {"fingerprint": fingerprint(tokenizer, protocol), "vocab": len(tokenizer), "window": 6, "embed": 4,
                "hidden": 8, "counters": list(COUNTERS)} | changes
    weights = initial_weights(settings["vocab"], settings["window"], settings["embed"], settings["hidden"], seed=1)
    return save_router(folder, weights, settings), weights


def state(protocol, *writers: tuple[str, list[int]]) -> Transcript:
    turns = [Turn(agent, "think", [protocol.open_id(agent)], body, None, "stop", "") for agent, body in writers]
    return Transcript(Problem("p", "q", "", "unit", "synthetic"), [1, 2, 3], turns=turns)


def test_features_are_the_last_context_ids_and_the_transcripts_counters(protocol_tokenizer):
    _, p = protocol_tokenizer
    handed = state(p, ("long", [10, 11, p.close_id("long")]), ("short", [12, p.ids["handback"]]))
    ids, counters = state_features(handed, p, window=6, pad=999)
    assert ids == [10, 11, p.close_id("long"), p.open_id("short"), 12, p.ids["handback"]]
    assert dict(zip(COUNTERS, counters)) == {"think_turns": 2, "long_turns": 1, "short_turns": 1, "long_tokens": 3,
                                             "short_tokens": 2, "last_long": 0, "last_short": 1, "handed_back": 1,
                                             "folds": 0, "context": 10}
    ids, _ = state_features(state(p), p, window=6, pad=999)
    assert ids == [999, 999, 999, 1, 2, 3]  # left-padded


def test_a_saved_router_decides_as_its_weights_say(protocol_tokenizer, tmp_path):
    import torch

    tokenizer, p = protocol_tokenizer
    folder, weights = save(tmp_path / "r", tokenizer, p)
    model = load_router(folder, tokenizer, p)
    states = [state(p), state(p, ("long", [10, p.close_id("long")])), state(p, ("short", [12, p.ids["handback"]]))]
    features = [state_features(s, p, 6, len(tokenizer)) for s in states]
    expected = logits(weights, torch.tensor([f[0] for f in features]), torch.tensor([f[1] for f in features]))
    names = ("long", "short", None)
    assert model.predict(states) == [names[i] for i in expected.argmax(1).tolist()]
    assert json.loads((folder / "router.json").read_text())["format"] == 1


def test_router_files_that_do_not_fit_the_agents_are_refused_by_name(protocol_tokenizer, tmp_path):
    tokenizer, p = protocol_tokenizer
    with pytest.raises(RouterFileError, match="router 'learned' needs solve.router_path"):
        load_router(None, tokenizer, p)
    with pytest.raises(RouterFileError, match=f"{tmp_path / 'none' / 'router.json'}: no such file"):
        load_router(tmp_path / "none", tokenizer, p)
    folder, _ = save(tmp_path / "other-protocol", tokenizer, p)
    swapped = Protocol({**p.ids, "handback": p.ids["summary_open"], "summary_open": p.ids["handback"]})
    with pytest.raises(RouterFileError, match=f"{folder / 'router.json'}: trained for another tokenizer or protocol"):
        load_router(folder, tokenizer, swapped)
    folder, _ = save(tmp_path / "other-vocab", tokenizer, p, vocab=len(tokenizer) + 5)
    with pytest.raises(RouterFileError, match=f"{folder / 'router.safetensors'}: its weights do not fit a tokenizer"):
        load_router(folder, tokenizer, p)
    folder, _ = save(tmp_path / "other-hidden", tokenizer, p)
    meta = json.loads((folder / "router.json").read_text())
    (folder / "router.json").write_text(json.dumps(meta | {"hidden": 16}))
    with pytest.raises(RouterFileError, match=r"router.safetensors: .*hidden 16 \(mismatched: b1, w1, w2\)"):
        load_router(folder, tokenizer, p)
    (folder / "router.json").write_text("{not json")
    with pytest.raises(RouterFileError, match=f"{folder / 'router.json'}: not a router description"):
        load_router(folder, tokenizer, p)
    (folder / "router.json").write_text(json.dumps(meta))
    (folder / "router.safetensors").write_bytes(b"\x00" * 16)
    with pytest.raises(RouterFileError, match=f"{folder / 'router.safetensors'}: not a safetensors file"):
        load_router(folder, tokenizer, p)


def test_router_learned_without_a_router_file_is_a_config_error(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("long: {path: a}\nshort: {path: b}\nsolve: {router: learned}\n")
    with pytest.raises(ConfigError, match="'solve': router 'learned' needs solve.router_path"):
        load_config(path)
    path.write_text("long: {path: a}\nshort: {path: b}\nsolve: {router: learned, router_path: ./router}\n")
    assert load_config(path).solve.router_path == str(tmp_path / "router")  # resolved against the config's folder
    path.write_text("long: {path: a}\nshort: {path: b}\nscoring: {router_fallback: learned}\n")
    with pytest.raises(ConfigError, match="router_fallback cannot be 'learned'"):
        load_config(path)
