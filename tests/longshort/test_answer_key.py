"""No answer key at inference: every inference mode writes the same transcripts when every gold answer of its input
file is replaced by a wrong one, and the one router that reads the key (``mc-oracle``) is caught doing so and
labelled wherever a report shows it. Scripted agents (tests/conftest.py ``scripted_pair``), model-free."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from longshort.config import load_config, override
from longshort.eval.modes import mode_file, mode_table
from longshort.jsonl import read_problems
from longshort.router_model import COUNTERS, fingerprint, initial_weights, save_router
from longshort.routers import ROUTERS
from longshort.runner import orchestrator, solve_file

TINY_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"
POLICIES = ("unfold", "fold-append")


def save_random_router(folder, tokenizer, protocol, window: int = 8):
    """An untrained router of these agents: real weights, real checks, decisions of no use."""
    return save_router(folder, initial_weights(len(tokenizer), window, 4, 8, seed=0),
                       {"fingerprint": fingerprint(tokenizer, protocol), "vocab": len(tokenizer), "window": window,
                        "embed": 4, "hidden": 8, "counters": list(COUNTERS)})


@pytest.fixture
def config(scripted_pair, tmp_path):
    router = save_random_router(tmp_path / "router", scripted_pair.tokenizer, scripted_pair.protocol)
    return override(load_config(TINY_CONFIG), {"scoring.rollouts": 2, "scoring.router_turns": 3,
                                               "solve.router_path": str(router),
                                               "solve.memory.segment_budget": 12, "solve.memory.fold_after": 6})


def write_problems(path: Path, answers: list[str]) -> Path:
    path.parent.mkdir(exist_ok=True)
    path.write_text("".join(json.dumps({"id": f"p{i}", "question": f"x=3.\nop1: +{i}.\nFind x modulo m=10.",
                                        "answer": answer}) + "\n" for i, answer in enumerate(answers)))
    return path


def solved(path: Path) -> list[dict]:
    """The transcripts of a file without the gold answer they carry and their timings."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        del row["problem"]["answer"], row["seconds"]
    return sorted(rows, key=lambda r: r["problem"]["id"])


def test_poisoned_answers_leave_every_inference_modes_transcripts_unchanged(config, scripted_pair, tmp_path):
    inference = [name for name, cls in ROUTERS.items() if not cls.reads_answer_key]
    assert {"long", "short", "alternate", "handoff", "mc", "learned"} <= set(inference)
    table = mode_table(config, ",".join(f"{r}/{p}" for r in [*inference, "mc-oracle"] for p in POLICIES))
    inputs = {name: write_problems(tmp_path / name / "problems.jsonl", [answer] * 4)  # one name: one source
              for name, answer in (("gold", "7"), ("poisoned", "999"))}
    for name, path in inputs.items():
        problems = read_problems(path)
        for mode, solve in table.items():
            solve_file(orchestrator(config, scripted_pair, solve), problems, tmp_path / name / mode_file(mode))
    for mode in table:
        gold, poisoned = (solved(tmp_path / name / mode_file(mode)) for name in inputs)
        assert len(gold) == 4 and all(t["turns"] for t in gold), mode
        if mode.startswith("mc-oracle/"):
            assert gold != poisoned, mode  # the key changes its decisions: this test would catch a router reading it
        else:
            assert gold == poisoned, mode


def test_mc_judges_by_agreement_and_mc_oracle_by_the_gold_answer(config, scripted_pair):
    from longshort.problem import Problem

    # After the long agent's first thought the rollouts answer 3, and after a chunk by either agent 7: both chunks
    # raise agreement with the majority (7) from 0 to 1, and the long one is shorter, so mc picks it where handoff
    # would give the turn to the short agent. The oracle does the same when the gold is 7, and with a wrong gold
    # sees no gain anywhere and leaves every turn to handoff.
    gold = Problem("p", "x=3.\nop1: +4.\nFind x modulo m=10.", "7", "unit", "synthetic")
    wrong = Problem(gold.id, gold.question, "999", gold.source, gold.kind)
    for router, problem in (("mc", gold), ("mc", wrong), ("mc-oracle", gold), ("mc-oracle", wrong)):
        orch = orchestrator(config, scripted_pair, mode_table(config, f"{router}/unfold")[f"{router}/unfold"])
        (t,) = orch.solve([problem])
        picked = router == "mc" or problem is gold
        writers = ["long", "long", "short", "long"] if picked else ["long", "short", "long", "short", "long"]
        assert [u.agent for u in t.turns] == writers, (router, problem.answer)
        assert orch.router.stats == {"decisions": 3, "long": int(picked), "short": 0, "fallback": 3 - picked}
        assert orch.stats["router_requests"] > 0 and orch.stats["router_tokens"] > 0


def test_mc_under_the_continue_policy_judges_a_state_by_where_solving_on_leads(config, scripted_pair):
    """Answering at once after the long agent's first thought gives 3 (the scripted rollouts answer 7 only after two
    think turns), so a chunk seems to help; solving on as the pair would (``scoring.policy: continue``: both agents
    under handoff) every rollout reaches 7 from every state, so no chunk raises the agreement and each decided turn
    is left to handoff. The gold answer plays no part: a wrong one changes nothing."""
    from longshort.problem import Problem

    config = override(config, {"scoring.policy": "continue", "scoring.continue_tokens": 64})
    gold = Problem("p", "x=3.\nop1: +4.\nFind x modulo m=10.", "7", "unit", "synthetic")
    wrong = Problem(gold.id, gold.question, "999", gold.source, gold.kind)
    found = []
    for problem in (gold, wrong):
        orch = orchestrator(config, scripted_pair, mode_table(config, "mc/unfold")["mc/unfold"])
        (t,) = orch.solve([problem])
        assert orch.router.stats == {"decisions": 3, "long": 0, "short": 0, "fallback": 3}
        assert orch.router.rollouts.stats["rollout_tokens"] > 0
        found.append([(u.agent, u.token_ids) for u in t.turns])
    assert [agent for agent, _ in found[0]] == ["long", "short", "long", "short", "long"]  # handoff's turns
    assert found[0] == found[1]


def test_self_consistency_shares_agree_with_the_majority_of_all_rollouts(config, scripted_pair):
    from longshort.problem import Problem
    from longshort.transcript import Transcript

    router = orchestrator(config, scripted_pair, mode_table(config, "mc/unfold")["mc/unfold"]).router
    state = Transcript(Problem("p", "q", "", "unit", "synthetic"), [0])  # no gold answer at all
    chances = router.chances(state, {"now": ["3", None], "long": [" 7", "7"], "short": ["7", "3"]})
    assert chances == {"now": 0.0, "long": 1.0, "short": 0.5}
    assert router.chances(state, {"now": [None, None], "long": [None, None]}) == {"now": 0.0, "long": 0.0}


def test_reports_label_the_mode_that_reads_the_answer_key(config, scripted_pair, tmp_path):
    from longshort.eval.report import markdown_table
    from longshort.eval.run_benchmarks import evaluate

    problems = read_problems(write_problems(tmp_path / "p.jsonl", ["7", "7"]))
    table = mode_table(config, "handoff/unfold,mc/unfold,mc-oracle/unfold")
    summary = evaluate(config, {"unit": problems}, table, tmp_path / "run", scripted_pair)
    rows = markdown_table(summary).splitlines()[2:]
    assert [r.split(" | ")[1] for r in rows] == ["handoff/unfold", "mc/unfold", "mc-oracle/unfold (reads answer key)"]
    assert summary["modes"]["mc-oracle/unfold"]["reads_answer_key"] and not summary["modes"]["mc/unfold"]["reads_answer_key"]
    assert "oracle upper bound" in (tmp_path / "run" / "report.md").read_text()
    assert "oracle upper bound" in (tmp_path / "run" / "report.html").read_text()
    mc, handoff = summary["results"]["unit"]["mc/unfold"], summary["results"]["unit"]["handoff/unfold"]
    assert mc["calls"] > handoff["calls"] > 0 and mc["lookahead_tokens"] > 0 == handoff["lookahead_tokens"]
    assert mc["sample_s"] > 0
