import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]


def longshort(*args):
    return subprocess.run([sys.executable, "-m", "longshort.cli", *args], capture_output=True, text=True, cwd=REPO)


def test_grade_prints_correct_or_incorrect():
    ok = longshort("grade", "--kind", "math", "--prediction", r"so \boxed{\dfrac{1}{2}}", "--gold", "0.5")
    assert (ok.returncode, ok.stdout.strip()) == (0, "correct")
    wrong = longshort("grade", "--kind", "mcq", "--prediction", "Answer: B", "--gold", "C")
    assert (wrong.returncode, wrong.stdout.strip()) == (0, "incorrect")


@pytest.mark.parametrize("args, verdict", [
    (["--gold", r"-\frac{7}{3}", "--prediction", r"-\frac{14}{6}", "--delimited"], "correct"),
    (["--prediction", r"-\frac{14}{6}", "--gold", r"-\frac{7}{3}", "--delimited"], "correct"),
    (["--gold", "-5", "--prediction", "-6", "--delimited"], "incorrect"),
    (["--gold=-x", "--prediction=--x", "--delimited"], "incorrect"),
    (["--gold", "-x", "--prediction", "The answer is $-x$."], "correct"),
])
def test_grade_takes_values_that_start_with_a_dash(args, verdict, capsys):
    from longshort.cli import main

    assert main(["grade", "--kind", "math", *args]) == 0
    assert capsys.readouterr().out.strip() == verdict


def test_grade_refuses_an_empty_gold(capsys):
    from longshort.cli import main

    assert main(["grade", "--kind", "synthetic", "--prediction", "", "--gold", ""]) == 2
    assert capsys.readouterr().err.strip() == "longshort: error: the gold answer is empty ('')"


def test_bad_config_is_one_clear_message(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("long: {path: a}\nshort: {path: b}\nsampling: {temprature: 1}\n")
    result = longshort("tiny", "--config", str(bad))
    assert result.returncode == 2
    assert result.stderr.strip() == f"longshort: error: {bad}: unknown key 'sampling.temprature'"


def test_importing_longshort_loads_no_heavy_engine():
    code = (
        "import sys, longshort.cli, longshort.config, longshort.protocol, longshort.agents.actor, "
        "longshort.agents.backend, longshort.agents.hf_backend, longshort.data.tiny_world, longshort.rl.sft, "
        "longshort.grader, longshort.chat, longshort.freeform, longshort.plan, longshort.data.coldstart\n"
        "longshort.cli.build_parser()\n"
        "heavy = [m for m in ('vllm', 'openrlhf', 'deepspeed', 'ray', 'torch', 'transformers', 'math_verify', "
        "'sympy') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""
