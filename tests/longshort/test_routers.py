"""Routers decide the next writer from the transcript alone; names are checked when a config loads."""
from __future__ import annotations

import pytest

from longshort.config import ConfigError, SolveConfig, load_config
from longshort.problem import Problem
from longshort.routers import ROUTERS, make_router
from longshort.transcript import Transcript, Turn

HANDBACK, CLOSE_SHORT = 7, 6
IDS = {"handback": HANDBACK}


class Tags:
    ids = IDS


def transcript(*writers: tuple[str, list[int]]) -> Transcript:
    turns = [Turn(agent, "think", [1], body, None, "stop", "") for agent, body in writers]
    return Transcript(Problem("p", "q", "a", "s", "synthetic"), [0], turns=turns)


def choose(name: str, t: Transcript) -> str:
    return make_router(name, Tags()).choose([t])[0]


def test_alternate_takes_turns_long_first():
    assert choose("alternate", transcript()) == "long"
    assert choose("alternate", transcript(("long", [3]))) == "short"
    assert choose("alternate", transcript(("long", [3]), ("short", [4]))) == "long"


def test_handoff_gives_the_pen_back_only_on_the_hand_back_tag():
    assert choose("handoff", transcript()) == "long"
    assert choose("handoff", transcript(("long", [3]))) == "short"
    assert choose("handoff", transcript(("long", [3]), ("short", [4, CLOSE_SHORT]))) == "short"
    assert choose("handoff", transcript(("long", [3]), ("short", [4, HANDBACK]))) == "long"


def test_single_agent_routers():
    t = transcript(("long", [3]))
    assert choose("long", t) == "long" and choose("short", t) == "short"


def test_unknown_names_are_refused_when_the_config_loads(tmp_path):
    assert {"long", "short", "alternate", "handoff", "mc", "mc-oracle", "learned"} <= set(ROUTERS)
    assert [name for name, cls in ROUTERS.items() if cls.reads_answer_key] == ["mc-oracle"]
    with pytest.raises(ValueError, match="unknown router 'nope'; known: "):
        make_router("nope", Tags())
    with pytest.raises(ValueError, match="unknown router 'nope'"):
        SolveConfig(router="nope")
    path = tmp_path / "c.yaml"
    for text, key in (("solve: {router: nope}", "solve.router"), ("rl: {router: nope}", "rl.router"),
                      ("eval: {routers: [handoff, nope]}", "eval.routers.1"),
                      ("scoring: {router_fallback: mc}", "scoring"),
                      ("solve: {memory: {policy: folded}}", "solve.memory.policy"),
                      ("coldstart: {fold_policy: unfold}", "coldstart.fold_policy"),
                      ("rl: {advantage: ppo}", "rl.advantage")):
        path.write_text(f"long: {{path: a}}\nshort: {{path: b}}\n{text}\n")
        with pytest.raises(ConfigError, match=f"'{key}'"):
            load_config(path)
    # cold-start may train its summaries inline and unfolded (Accordion-Thinking's SFT), not without summaries
    path.write_text("long: {path: a}\nshort: {path: b}\ncoldstart: {fold_policy: unfold-summaries}\n")
    assert load_config(path).coldstart.fold_policy == "unfold-summaries"
