import random
import re

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
