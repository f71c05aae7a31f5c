import random
import re

import pytest

from longshort.data.synthetic import (
    SyntheticProblem,
    long_trace,
    mixed_trace,
    plain_text,
    random_problem,
    short_trace,
)


def test_answer_is_the_ops_applied_in_order_modulo():
    p = SyntheticProblem(start=7, ops=(("+", 5), ("*", 3), ("-", 4)), modulus=10)
    assert p.values() == [7, 2, 6, 2]
    assert p.answer == "2"
    assert p.question == "x=7.\nop1: +5.\nop2: *3.\nop3: -4.\nFind x modulo m=10."


def test_every_written_step_is_true_except_labelled_mistakes():
    rng = random.Random(0)
    for _ in range(300):
        p = random_problem(rng, 3, 6)
        for chunks in (long_trace(p, rng), short_trace(p), mixed_trace(p, rng)):
            for chunk in chunks:
                if chunk.label in ("step", "correction", "mistake"):
                    lhs, rhs = re.search(r"(\d+(?:[-+*]\d+)+)=(\d+)\.$", chunk.text).groups()
                    tokens = re.findall(r"\d+|[-+*]", lhs)
                    value = int(tokens[0])
                    for op, b in zip(tokens[1::2], tokens[2::2]):
                        value = {"+": value + int(b), "-": value - int(b), "*": value * int(b)}[op] % p.modulus
                    assert (value == int(rhs)) == (chunk.label != "mistake"), chunk.text
            assert chunks[-1].text == f"So x={p.answer}."
        for chunk in long_trace(p, rng):
            if chunk.label in ("step", "mistake"):  # a long step restates its question line verbatim
                assert chunk.text.split(". ")[0] + "." in p.question.splitlines()


def test_long_traces_carry_checks_detours_and_corrected_mistakes():
    rng = random.Random(1)
    labels = []
    for _ in range(300):
        chunks = long_trace(random_problem(rng, 3, 6), rng)
        labels += [c.label for c in chunks]
        for a, b in zip(chunks, chunks[1:]):
            if a.label == "mistake":
                assert b.label == "correction" and b.text.startswith("Wait")
    for label in ("step", "check", "detour", "mistake", "correction", "conclusion"):
        assert label in labels


def test_short_traces_are_far_shorter_and_steps_only():
    rng = random.Random(2)
    problems = [random_problem(rng, 3, 6) for _ in range(200)]
    long_len = sum(len(plain_text(long_trace(p, rng))) for p in problems)
    short_len = sum(len(plain_text(short_trace(p))) for p in problems)
    assert short_len < 0.6 * long_len
    assert {c.label for p in problems for c in short_trace(p)} == {"step", "conclusion"}


def test_mixed_traces_alternate_agents():
    rng = random.Random(3)
    for _ in range(100):
        agents = [c.agent for c in mixed_trace(random_problem(rng, 4, 6), rng)[:-1]]
        runs = [a for k, a in enumerate(agents) if k == 0 or agents[k - 1] != a]
        assert all(x != y for x, y in zip(runs, runs[1:]))


def test_overthinking_traces_check_every_step_hesitate_and_redo_the_chain():
    rng = random.Random(4)
    labels = []
    for _ in range(300):
        p = random_problem(rng, 2, 4)
        chunks = long_trace(p, rng, "overthinking")
        labels += [c.label for c in chunks]
        for k, chunk in enumerate(chunks):
            if chunk.label in ("step", "correction"):  # every step is checked at once
                assert chunks[k + 1].label == "check" and chunks[k + 1].text.startswith("Check: ")
        for chunk in chunks:
            if chunk.label == "restart":  # the chain redone is the true one
                values = p.values()
                assert chunk.text == "Again from the start: " + ", ".join(
                    f"{values[i]}{op}{b}={values[i + 1]}" for i, (op, b) in enumerate(p.ops)) + "."
    for label in ("step", "check", "detour", "hesitation", "mistake", "correction", "restart", "conclusion"):
        assert label in labels
    assert labels.count("check") > 1.5 * labels.count("step")  # checks of checks


def test_overthinking_spends_most_of_a_trace_on_thoughts_that_change_nothing():
    rng = random.Random(5)
    problems = [random_problem(rng, 2, 4) for _ in range(300)]
    traces = [long_trace(p, rng, "overthinking") for p in problems]
    total = sum(len(c.text) for t in traces for c in t)
    key = sum(len(c.text) for t in traces for c in t if c.label in ("step", "correction", "conclusion"))
    assert key < 0.35 * total
    assert total > 4 * sum(len(plain_text(short_trace(p))) for p in problems)



def test_the_steps_rewrite_keeps_long_chunks_and_writes_each_short_run_as_the_steps_it_carries_out():
    from longshort.data.synthetic import step_text, steps_only_rewrite

    rng = random.Random(8)
    for _ in range(300):
        p = random_problem(rng, 2, 4)
        chunks = long_trace(p, rng, "overthinking")
        owners = [rng.choice(["long", "short"]) for _ in chunks]
        pieces = steps_only_rewrite(p, chunks, owners)
        assert [t for a, t in pieces if a == "long"] == [c.text for c, o in zip(chunks, owners) if o == "long"]
        # every op is carried out once, in order: by a long step or correction, or by a short plain step
        done = []
        for agent, text in pieces:
            if agent == "long":
                chunk = next(c for c, o in zip(chunks, owners) if o == "long" and c.text == text)
                done += [chunk.done] if chunk.label in ("step", "correction") else []
            elif text != pieces[-1][1]:
                done.append(next(i + 1 for i in range(len(p.ops)) if text == step_text(p, i)))
        assert done == list(range(1, len(p.ops) + 1)), (pieces, owners)
        assert pieces[-1][1] == f"So x={p.answer}."
    assert steps_only_rewrite(p, chunks, ["long"] * len(chunks)) == [("long", c.text) for c in chunks]
    with pytest.raises(ValueError, match="owners"):
        steps_only_rewrite(p, chunks, ["long"])


def test_the_world_config_chooses_the_long_style_of_the_traces_cold_start_learns_from():
    from pathlib import Path

    from longshort.config import load_config
    from longshort.rl.coldstart import tiny_traces

    configs = Path(__file__).resolve().parents[2] / "configs"
    for name, style_labels in (("tiny.yaml", set()), ("tiny-v2.yaml", {"hesitation", "restart"})):
        config = load_config(configs / name)
        config = config.model_copy(update={"coldstart": config.coldstart.model_copy(update={"traces": 50})})
        labels = {c.label for _, _, chunks in tiny_traces(config) for c in chunks}
        assert labels & {"hesitation", "restart"} == style_labels, name


def test_two_variables_each_op_changes_one_and_the_last_brings_y_into_x():
    p = SyntheticProblem(start=6, ops=(("y", "*", 8), ("x", "-", 3), ("x", "+", "y")), modulus=10, y_start=4)
    assert p.states() == [{"x": 6, "y": 4}, {"x": 6, "y": 2}, {"x": 3, "y": 2}, {"x": 5, "y": 2}]
    assert p.answer == "5"
    assert p.question == "x=6, y=4.\nop1: y*8.\nop2: x-3.\nop3: x+y.\nFind x modulo m=10."
    rng = random.Random(9)
    for _ in range(200):
        q = random_problem(rng, 2, 4, variables=2)
        assert q.y_start is not None and q.op(len(q.ops) - 1)[::2] == ("x", "y")
        assert all(isinstance(b, int) for _, _, b in q.ops[:-1])


def test_two_variable_steps_are_true_and_end_with_the_state_after_them():
    rng = random.Random(10)
    for _ in range(300):
        p = random_problem(rng, 2, 4, variables=2)
        states = p.states()
        for chunks in (long_trace(p, rng), long_trace(p, rng, "overthinking"), short_trace(p), mixed_trace(p, rng)):
            for chunk in chunks:
                if chunk.label not in ("step", "correction", "mistake"):
                    continue
                x, y = map(int, re.search(r"x=(\d), y=(\d)\.$", chunk.text).groups())
                if chunk.label == "mistake":  # the op's own variable is wrong, the other one is right
                    variable = p.op(chunk.done)[0]
                    wrong = {"x": x, "y": y}
                    assert wrong != states[chunk.done + 1] and wrong[variable] != states[chunk.done + 1][variable]
                else:
                    assert {"x": x, "y": y} == states[chunk.done], chunk.text
            assert chunks[-1].text == f"So x={p.answer}."
        for chunk in long_trace(p, rng):
            if chunk.label in ("step", "mistake"):  # a long step restates its question line verbatim
                assert chunk.text.split(". ")[0] + "." in p.question.splitlines()


def test_a_lossy_summary_keeps_only_x_so_the_state_after_it_is_lost():
    from longshort.data.synthetic import summary_text

    p = SyntheticProblem(start=6, ops=(("y", "*", 8), ("x", "-", 3), ("x", "+", "y")), modulus=10, y_start=4)
    assert summary_text(p, 2) == "After op2: x=3, y=2."
    assert summary_text(p, 2, lossy=True) == "After op2: x=3."
    assert summary_text(p, 0) == "Start: x=6, y=4."
    one = SyntheticProblem(start=7, ops=(("+", 5),), modulus=10)
    assert summary_text(one, 1) == summary_text(one, 1, lossy=True) == "After op1: x=2."


def test_the_steps_rewrite_of_a_two_variable_trace_carries_every_op_out_once():
    from longshort.data.synthetic import step_text, steps_only_rewrite

    rng = random.Random(11)
    for _ in range(200):
        p = random_problem(rng, 2, 4, variables=2)
        chunks = long_trace(p, rng, "overthinking")
        pieces = steps_only_rewrite(p, chunks, ["short"] * len(chunks))
        assert [text for _, text in pieces] == [step_text(p, i) for i in range(len(p.ops))] + [f"So x={p.answer}."]
