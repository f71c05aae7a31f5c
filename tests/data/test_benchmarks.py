"""Benchmark loaders on the real benchmark files: every row becomes a gradable Problem."""
import pytest

from longshort.data.benchmarks import BENCHMARKS, BenchmarkError, load_benchmark, names, normalize
from longshort.grader import check_gold, grade

FILES = [name for name in BENCHMARKS if name != "synthetic"]


@pytest.mark.parametrize("name", FILES)
def test_every_row_of_every_file_loads_with_a_gold_the_grader_reads(name, shared_file):
    problems = load_benchmark(name, shared_file(f"benchmarks/{name}.jsonl").parent)
    assert len(problems) >= 30 and len({p.id for p in problems}) == len(problems)
    for p in problems:
        assert p.kind == BENCHMARKS[name].kind and p.question.strip() and p.source == name
        check_gold(p.kind, p.answer)
        assert grade(p.kind, rf"The answer is $\boxed{{{p.answer}}}$.", p.answer)


def test_answers_are_normalized(shared_file):
    data = shared_file("benchmarks/amc23.jsonl").parent
    assert load_benchmark("amc23", data, limit=1)[0].answer == "27"  # stored as 27.0
    gsm = load_benchmark("gsm8k", data, limit=1)[0]
    assert gsm.answer == "18" and gsm.kind == "gsm8k"  # the number after ####
    assert len(load_benchmark("math500", data, limit=3)) == 3


def test_hub_style_gpqa_rows_get_shuffled_options_and_the_right_letter():
    row = {"Question": "Which is heavier?", "Correct Answer": "lead", "Incorrect Answer 1": "air",
           "Incorrect Answer 2": "foam", "Incorrect Answer 3": "cork", "Record ID": "rec1"}
    problem = normalize("gpqa_diamond", "mcq", row, 1, "hub")
    line = next(l for l in problem.question.splitlines() if l.startswith(f"{problem.answer})"))
    assert line == f"{problem.answer}) lead"
    assert normalize("gpqa_diamond", "mcq", row, 1, "hub").question == problem.question  # seeded per row


def test_bad_names_and_rows_are_named(tmp_path):
    with pytest.raises(BenchmarkError, match="unknown benchmark.*math600"):
        names("math500,math600")
    (tmp_path / "aime24.jsonl").write_text('{"problem": "2+2?", "answer": "4"}\n{"problem": "", "answer": "1"}\n')
    with pytest.raises(BenchmarkError, match=r"aime24.jsonl, row 2: no problem or question text"):
        load_benchmark("aime24", tmp_path)
    with pytest.raises(BenchmarkError, match="does not exist"):
        load_benchmark("gsm8k", tmp_path)


def test_synthetic_is_the_tiny_worlds_held_out_set(tiny_config):
    import json
    from pathlib import Path

    problems = load_benchmark("synthetic", limit=5, tiny=tiny_config.tiny)
    heldout = [json.loads(l) for l in open(Path(tiny_config.tiny.out_dir) / "heldout.jsonl")][:5]
    assert [(p.question, p.answer) for p in problems] == [(h["question"], h["answer"]) for h in heldout]
