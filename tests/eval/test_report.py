"""`longshort report` on a transcripts file such as `longshort solve` writes: modes read back from the transcripts,
pass@k and the viewer as the config's eval section says. Model-free: the transcripts are built by hand."""
from __future__ import annotations

import json
from pathlib import Path

import yaml

from longshort.problem import Problem
from longshort.transcript import Transcript, Turn

TINY_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "tiny.yaml"


def solved(pid: str, sample: int, answer: str, router: str, memory: str, source: str = "gsm8k") -> dict:
    turns = [Turn("long", "think", [1], [5, 6], [-0.1, -0.2], "stop", "five six"),
             Turn("short", "answer", [2], [7], [-0.3], "stop", answer)]
    return Transcript(Problem(pid, "q", "7", source, "gsm8k"), [0, 0], sample=sample, router=router, memory=memory,
                      turns=turns, answer=answer, stop_reason="answered").to_dict()


def test_a_report_from_solve_output_groups_by_benchmark_and_recorded_mode(tmp_path):
    from longshort.cli import main

    rows = [solved("a", s, ans, "handoff", "unfold") for s, ans in enumerate(["7", "3", "7", "3"])]
    rows += [solved("b", s, "3", "handoff", "unfold") for s in range(4)]
    rows += [solved("a", s, "7", "long", "unfold") for s in range(2)]
    rows += [solved("c", 0, "7", "handoff", "fold-append", source="math500")]
    path = tmp_path / "out.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    config = yaml.safe_load(TINY_CONFIG.read_text())
    config["eval"] = {"routers": ["handoff"], "pass_k": [1, 2, 4], "viewer_transcripts": 1}
    (tmp_path / "c.yaml").write_text(yaml.safe_dump(config))

    assert main(["report", str(path), "--output", str(tmp_path / "r"), "--config", str(tmp_path / "c.yaml")]) == 0
    summary = json.loads((tmp_path / "r" / "summary.json").read_text())
    gsm8k = summary["results"]["gsm8k"]
    assert set(gsm8k) == {"handoff/unfold", "long"} and set(summary["results"]["math500"]) == {"handoff/fold-append"}
    pair = gsm8k["handoff/unfold"]
    assert pair["pass@1"] == 0.25 and pair["samples"] == 8 and pair["problems"] == 2
    assert pair["pass@2"] == (1 - (2 / 4) * (1 / 3)) / 2 and pair["pass@4"] == 0.5  # a: 2 of 4 right, b: none
    assert gsm8k["long"]["pass@2"] == 1.0 and "pass@4" not in gsm8k["long"]  # two samples: no pass@4
    page = (tmp_path / "r" / "report.html").read_text()
    assert page.count('"title": "') == 3  # one transcript per benchmark × mode (viewer_transcripts: 1)
    assert "| gsm8k | handoff/unfold | 8 | 25.0%" in (tmp_path / "r" / "report.md").read_text()
