"""The tiny world's task: a chain of modular arithmetic operations with an exactly checkable answer.

A problem is a start value and a list of operations (``+ 5``, ``* 3``, ``- 4``) applied in order modulo a small
modulus, one per line of the question. Traces come in two styles, each a list of labelled chunks (one paragraph
each):

- long style, like an R1 trace: one operation per step, each step restating its line of the question before the
  arithmetic, with self-checks, detours, and now and then a wrong step followed by "Wait, ..." and its correction;
- short style: steps only, two operations folded into one line where it can, so it is far shorter and, for a
  small model, less reliable.

The formats are chosen so a two-layer model learns them in minutes on a CPU: a step starts with exactly the
tokens of its question line, whose label (``op3:``) the tiny tokenizer keeps as one token, so an induction head
finds the line by a one-token match and copies it; and no number follows a space, so with digits split by the
tokenizer a digit is always the same token.

The long style comes in two kinds (``tiny.long_style``): ``plain``, where a check or a detour follows a step now and
then, and ``overthinking``, where the long model overthinks as R1 does: every step is checked and most checks are
checked again, hesitation and alternatives come between steps, and the whole chain is redone from the start before
the conclusion, so that a few key steps carry the answer and most tokens go to thoughts that change nothing.

A problem has one variable, ``x``, or two (``tiny.variables: 2``): then each op names the variable it changes
(``op1: y*3.``), the last one brings ``y`` into ``x`` (``op3: x+y.``), and every step ends with the state
(``x=4, y=5.``). Carrying on after a fold then needs both values, so a summary that keeps only ``x``
(``summary_text(..., lossy=True)``) costs accuracy: state a summary can lose, which folding RL has to learn to keep.

Labels (step, check, detour, hesitation, mistake, correction, restart, conclusion) are ground truth for the
importance scorer's tests.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

OPS = {"+": lambda a, b, m: (a + b) % m, "-": lambda a, b, m: (a - b) % m, "*": lambda a, b, m: (a * b) % m}

DETOURS = (
    "Hmm, the order of the ops matters.",
    "Alternatively, add all ops first? No.",
    "Modulo m keeps the remainder.",
    "Let me go on.",
)
HESITATIONS = (
    "Hmm.",
    "Okay, next.",
    "Let me think about this.",
    "Hmm, let me be careful here.",
)


@dataclass(frozen=True)
class SyntheticProblem:
    start: int
    ops: tuple[tuple, ...]  # (op, b) on x; with y_start, (variable, op, b) where b is a number or "y"
    modulus: int = 10
    y_start: int | None = None  # the start value of a second variable, y

    @property
    def question(self) -> str:
        ops = "".join(f"\n{self.line(i)}" for i in range(len(self.ops)))
        return f"{state_text(self.states()[0])}{ops}\nFind x modulo m={self.modulus}."

    def op(self, index: int) -> tuple[str, str, int | str]:
        """Op ``index`` (0-based) as (the variable it changes, the operator, the operand)."""
        op = self.ops[index]
        return ("x", *op) if len(op) == 2 else op

    def states(self) -> list[dict[str, int]]:
        """The value of each variable before the first op and after each op."""
        state = {"x": self.start} | ({} if self.y_start is None else {"y": self.y_start})
        states = [dict(state)]
        for i in range(len(self.ops)):
            variable, op, b = self.op(i)
            state[variable] = OPS[op](state[variable], state[b] if isinstance(b, str) else b, self.modulus)
            states.append(dict(state))
        return states

    def values(self) -> list[int]:
        """The value of x before the first op and after each op."""
        return [state["x"] for state in self.states()]

    def line(self, index: int) -> str:
        """Op ``index`` (0-based) as its line of the question: ``op1: +5.``, or ``op1: y*3.`` with two variables."""
        variable, op, b = self.op(index)
        return f"{op_label(index + 1)} {variable if self.y_start is not None else ''}{op}{b}."

    def calc(self, index: int, result: int | None = None) -> str:
        """Op ``index`` carried out (``7*3=1.``), with ``result`` written in place of the true one if given."""
        (variable, op, b), (before, after) = self.op(index), self.states()[index:index + 2]
        operand = before[b] if isinstance(b, str) else b
        return f"{before[variable]}{op}{operand}={after[variable] if result is None else result}."

    def after(self, index: int, result: int | None = None) -> str:
        """What a step writes after its arithmetic: nothing with one variable, the state with two (`` x=1, y=5.``)."""
        if self.y_start is None:
            return ""
        variable = self.op(index)[0]
        state = self.states()[index + 1]
        return " " + state_text(state | ({} if result is None else {variable: result}))

    @property
    def answer(self) -> str:
        return str(self.values()[-1])


@dataclass(frozen=True)
class Paragraph:
    agent: str  # "long" | "short": the agent whose style wrote it
    label: str  # step | check | detour | mistake | correction | conclusion
    text: str
    done: int  # ops completed once this chunk is written


def random_problem(rng: random.Random, min_ops: int, max_ops: int, modulus: int = 10,
                   variables: int = 1) -> SyntheticProblem:
    """With two variables, each op but the last changes x or y by a number, and the last brings y into x."""
    if variables == 1:
        ops = tuple((rng.choice("+-*"), rng.randint(1, modulus - 1)) for _ in range(rng.randint(min_ops, max_ops)))
        return SyntheticProblem(start=rng.randint(0, modulus - 1), ops=ops, modulus=modulus)
    count, x, y = rng.randint(min_ops, max_ops), rng.randint(0, modulus - 1), rng.randint(0, modulus - 1)
    ops = [(rng.choice("xy"), rng.choice("+-*"), rng.randint(1, modulus - 1)) for _ in range(count - 1)]
    return SyntheticProblem(x, (*ops, ("x", rng.choice("+-*"), "y")), modulus, y_start=y)


def op_label(index: int) -> str:
    return f"op{index}:"


def state_text(state: dict[str, int]) -> str:
    return ", ".join(f"{name}={value}" for name, value in state.items()) + "."


def long_chunks(problem: SyntheticProblem, rng: random.Random, first: int = 0, last: int | None = None,
                style: str = "plain") -> list[Paragraph]:
    """Long-style chunks for ops ``first..last-1`` (all ops by default), plain or overthinking."""
    last = len(problem.ops) if last is None else last
    m = problem.modulus
    overthink = style == "overthinking"
    chunks = []
    for i in range(first, last):
        line, right, after = problem.line(i), problem.calc(i), problem.after(i)
        result = problem.states()[i + 1][problem.op(i)[0]]
        if overthink and rng.random() < 0.25:
            chunks.append(Paragraph("long", "hesitation", rng.choice(HESITATIONS), i))
        if rng.random() < 0.15:
            chunks.append(Paragraph("long", "detour", rng.choice(DETOURS), i))
        if rng.random() < 0.1:
            wrong = (result + rng.randint(1, m - 1)) % m
            chunks.append(Paragraph("long", "mistake", f"{line} {problem.calc(i, wrong)}{problem.after(i, wrong)}", i))
            chunks.append(Paragraph("long", "correction", f"Wait, that is wrong: {right}{after}", i + 1))
        else:
            chunks.append(Paragraph("long", "step", f"{line} {right}{after}", i + 1))
        if overthink or rng.random() < 0.3:
            chunks.append(Paragraph("long", "check", f"Check: {right[:-1]}. Yes.", i + 1))
        if overthink and rng.random() < 0.7:  # a check of the check
            chunks.append(Paragraph("long", "check", f"Check again: {right[:-1]}. Yes.", i + 1))
    return chunks


def restart(problem: SyntheticProblem) -> Paragraph:
    """The whole chain redone from the start, as R1 re-solves a problem it has already solved."""
    chain = ", ".join(problem.calc(i)[:-1] for i in range(len(problem.ops)))
    return Paragraph("long", "restart", f"Again from the start: {chain}.", len(problem.ops))


def short_chunks(problem: SyntheticProblem, first: int = 0, last: int | None = None) -> list[Paragraph]:
    """Short-style chunks: two ops per line, the intermediate value left unwritten (with two variables, only the
    state after both)."""
    last = len(problem.ops) if last is None else last
    values = problem.values()
    chunks = []
    i = first
    while i < last:
        if i + 1 < last and problem.y_start is not None:
            text = f"op{i + 1}-{i + 2}: {state_text(problem.states()[i + 2])}"
            i += 2
        elif i + 1 < last:
            (op1, b1), (op2, b2) = problem.ops[i], problem.ops[i + 1]
            text = f"op{i + 1}-{i + 2}: {values[i]}{op1}{b1}{op2}{b2}={values[i + 2]}."
            i += 2
        else:
            text = f"op{i + 1}: {problem.calc(i)}{problem.after(i)}"
            i += 1
        chunks.append(Paragraph("short", "step", text, i))
    return chunks


def conclusion(problem: SyntheticProblem, agent: str) -> Paragraph:
    return Paragraph(agent, "conclusion", f"So x={problem.answer}.", len(problem.ops))


def summary_text(problem: SyntheticProblem, done: int, lossy: bool = False) -> str:
    """What a fold keeps of a segment: how far the ops have got and the state there; a ``lossy`` one keeps only x."""
    state = problem.states()[done]
    kept = state_text({"x": state["x"]} if lossy else state)
    return f"After op{done}: {kept}" if done else f"Start: {kept}"


def long_trace(problem: SyntheticProblem, rng: random.Random, style: str = "plain") -> list[Paragraph]:
    chunks = long_chunks(problem, rng, style=style)
    if style == "overthinking" and rng.random() < 0.8:
        chunks.append(restart(problem))
    return chunks + [conclusion(problem, "long")]


def short_trace(problem: SyntheticProblem) -> list[Paragraph]:
    return short_chunks(problem) + [conclusion(problem, "short")]


def mixed_trace(problem: SyntheticProblem, rng: random.Random, style: str = "plain") -> list[Paragraph]:
    """Runs of ops written alternately in long and short style, as two collaborating agents would."""
    chunks: list[Paragraph] = []
    i, agent = 0, rng.choice(["long", "short"])
    while i < len(problem.ops):
        span = rng.randint(1, 2)
        end = min(i + span, len(problem.ops))
        chunks += long_chunks(problem, rng, i, end, style) if agent == "long" else short_chunks(problem, i, end)
        i, agent = end, "short" if agent == "long" else "long"
    return chunks + [conclusion(problem, agent)]


def plain_text(chunks: list[Paragraph]) -> str:
    """The trace as an R1-style thinking text: one paragraph per chunk."""
    return "\n\n".join(c.text for c in chunks)



def step_text(problem: SyntheticProblem, index: int) -> str:
    """Op ``index`` (0-based) as a plain long-style step: its question line, the arithmetic (and the state after it,
    with two variables)."""
    return f"{problem.line(index)} {problem.calc(index)}{problem.after(index)}"


def steps_only_rewrite(problem: SyntheticProblem, chunks: list[Paragraph], owners: list[str]) -> list[tuple[str, str]]:
    """A long trace split between the agents (``owners``, one per chunk), each run of the short agent's chunks
    rewritten as one plain step per operation the run carries out: checks, hesitation, detours, mistakes and
    restarts carry none out and vanish. The tiny short model cannot follow a rewrite prompt, so this stands in for
    it when cold-start data is synthesized from tiny-world traces."""
    if len(owners) != len(chunks):
        raise ValueError(f"{len(owners)} owners for {len(chunks)} chunks")
    pieces: list[tuple[str, str]] = []
    done, k = 0, 0
    while k < len(chunks):
        if owners[k] == "long":
            pieces.append(("long", chunks[k].text))
            done, k = chunks[k].done, k + 1
            continue
        end = k
        while end < len(chunks) and owners[end] == "short":
            end += 1
        pieces += [("short", step_text(problem, i)) for i in range(done, chunks[end - 1].done)]
        if end == len(chunks):  # the run ends the trace: its conclusion stays
            pieces.append(("short", chunks[-1].text))
        done, k = chunks[end - 1].done, end
    return pieces
