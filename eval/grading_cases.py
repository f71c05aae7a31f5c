r"""Math grading cases, one group per way an answer is found in a prediction; read by the grader's tests and by
eval/bench_grader.py.

Each case is (category, gold, prediction, correct, delimited): ``correct`` is the right verdict, decided by hand;
``delimited`` marks a prediction that is the text between the protocol's answer tags (a bare answer) rather than
a model's free text. Golds of free-text cases are written as math-verify expects LaTeX, inside ``$...$``;
delimited cases use bare golds, as the benchmark files hold them.
"""
from __future__ import annotations

from typing import NamedTuple


class Case(NamedTuple):
    category: str
    gold: str
    prediction: str
    correct: bool
    delimited: bool = False


def _group(category: str, rows: list[tuple], delimited: bool = False) -> list[Case]:
    return [Case(category, gold, prediction, correct, delimited) for gold, prediction, correct in rows]


SOLUTION = (
    "Let the two numbers be $a$ and $b$. From the first condition, $a + b = 20$, and from the second, "
    "$a - b = 6$. Adding the two equations gives $2a = 26$, so $a = 13$ and $b = 7$. The product we want is "
    "$ab = 91$, but the question asks for the sum of their squares: $a^2 + b^2 = 169 + 49$. "
)

CASES: list[Case] = [
    # Several boxes: joined by "and", "or" or commas they are one answer, a set; apart, the last one counts.
    *_group("several boxes", [
        ("$1, 3$", r"The solutions are $\boxed{1}$ and $\boxed{3}$.", True),
        ("$1, 3$", r"The solutions are $\boxed{1}$ and $\boxed{5}$.", False),
        ("$-2, 2$", r"\boxed{2}, \boxed{-2}", True),
        ("$2, 5, 7$", r"The primes are \boxed{2}, \boxed{5}, and \boxed{7}.", True),
        ("$2, 5, 7$", r"The primes are \boxed{2}, \boxed{5}.", False),
        ("$\{0, 1\}$", r"Either $\boxed{0}$ or $\boxed{1}$.", True),
        ("$3$", r"The roots are $\boxed{3}$ and $\boxed{-3}$.", False),
        (r"$\sqrt{2}$", r"$x = \boxed{\sqrt{2}}$ or $x = \boxed{-\sqrt{2}}$", False),
        (r"$\frac{1}{2}$", r"My first guess was $\boxed{1}$. Checking again, it is $\boxed{\frac{1}{2}}$.", True),
        (r"$\frac{1}{2}$", r"I first wrote $\boxed{\frac{1}{2}}$. Checking again, it is $\boxed{1}$.", False),
        ("$4$", r"So $\boxed{4}$. Verifying by substitution confirms $\boxed{4}$.", True),
        ("$a, b$", r"The unknowns are $\boxed{a}$ and $\boxed{b}$.", True),
        ("$6, 8$", r"The legs are $\boxed{6}$ and $\boxed{8}$.", True),
        ("$6, 8$", r"The legs are $\boxed{6}$ and $\boxed{10}$.", False),
    ]),
    # No box: the answer sits in inline or display math inside prose.
    *_group("math in prose", [
        ("$x < 3$", r"We find that $x \lt 3$.", True),
        ("$x < 3$", r"We find that $x > 3$.", False),
        (r"$\frac{7}{3}$", r"Dividing both sides by 3 gives $x = \frac{7}{3}$.", True),
        (r"$\frac{7}{3}$", r"Dividing both sides by 3 gives $x = \frac{3}{7}$.", False),
        (r"$2\sqrt{3}$", r"Thus the side length is $\sqrt{12}$.", True),
        ("$12$", r"The area is $3 \cdot 4 = 12$.", True),
        (r"$\pi$", r"So the period is $\pi$, as expected.", True),
        ("$5$", r"Since $a=2$ and $b=3$, we get $a+b=5$.", True),
        ("$5$", r"Since $a=2$ and $b=3$, we get $a+b=6$.", False),
        ("$y = 2x + 1$", r"The line is $y = 1 + 2x$.", True),
        ("$3$", r"Hence \(x = 3\).", True),
        ("$3$", "Therefore\n\\[\nx = 3.\n\\]", True),
        (r"$\frac{\sqrt{3}}{2}$", r"Hence $\sin 60^\circ = \frac{\sqrt{3}}{2}$.", True),
        (r"$(-\infty, 2)$", r"The solution set is $(-\infty, 2)$.", True),
        ("$0.25$", r"The probability is $\frac{1}{4}$.", True),
        ("$0.25$", r"The probability is $\frac{1}{3}$.", False),
        ("$6$", "We have $n = 6$ and so we are done.", True),
    ]),
    # "The final answer is ...", "Answer: ..." in plain prose, possibly after a long solution.
    *_group("final answer in prose", [
        ("$34$", "Adding the two parts gives 34. The final answer is 34.", True),
        ("$218$", SOLUTION + "That is 218. The final answer is 218.", True),
        ("$218$", SOLUTION + "That is 218. The final answer is 281.", False),
        (r"$\frac{7}{3}$", r"The final answer is $\frac{7}{3}$. I hope it is correct.", True),
        ("$12$", "Final answer: 12", True),
        ("$-5$", "**Final Answer:** -5", True),
        ("$2$", "I first tried 3, which fails the check. The final answer is 2.", True),
        ("$2$", "I first tried 2, which fails the check. The final answer is 3.", False),
        ("$2$", "Answer: 7", False),
        (r"$\sqrt{5}$", r"Therefore, the answer is $\sqrt{5}$.", True),
        (r"$\frac{1}{3}$", "The final answer is 1/3.", True),
        ("$3.5$", "The final answer is 3.5.", True),
        ("$10$", "After simplifying, we find that the answer is 10.", True),
        ("$100$", "The final answer is 100 degrees.", True),
    ]),
    # Currency and units around a number.
    *_group("units and currency", [
        ("$18$", "She earns $18 per day.", True),
        ("$1250.50$", "The total is $1,250.50.", True),
        ("$40$", "The price is €40.", True),
        ("$5$", r"The answer is $5\text{ cm}$.", True),
        ("$5$", r"The length is $\boxed{5 \text{ cm}}$.", True),
        ("$6$", r"The length is $\boxed{5 \text{ cm}}$.", False),
        ("$20$", r"It takes $\boxed{20\text{ minutes}}$.", True),
        ("$90$", r"The angle measures $\boxed{90^\circ}$.", True),
        ("$12$", r"The answer is \boxed{\$12}.", True),
        ("$12$", r"The answer is \boxed{\$13}.", False),
        (r"$25\%$", r"$\boxed{25\%}$", True),
        ("$0.25$", r"$\boxed{25\%}$", True),
        ("$3.5$", "The car travels $3.5$ km.", True),
        ("$50$", "He walked 50 meters.", True),
        ("$7$", r"\boxed{7 \text{ apples}}", True),
        ("$60$", r"$\boxed{60 \text{ mph}}$", True),
        ("$60$", r"$\boxed{16 \text{ mph}}$", False),
    ]),
    # Equations and inequalities.
    *_group("relations", [
        (r"$x \le 5$", r"$\boxed{x \leq 5}$", True),
        (r"$x \le 5$", r"$\boxed{x < 5}$", False),
        ("$x > -1$", r"$\boxed{-1 < x}$", True),
        ("$x = 3$", r"$\boxed{3}$", True),
        ("$3$", r"$\boxed{x=3}$", True),
        ("$3$", r"$\boxed{x=4}$", False),
        ("$y = 2x + 3$", r"$\boxed{y = 3 + 2x}$", True),
        ("$y = 2x + 3$", r"$\boxed{y = 2x - 3}$", False),
        ("$2 < x < 5$", r"$\boxed{(2, 5)}$", True),
        (r"$x \ge 2$", r"$\boxed{[2, \infty)}$", True),
        ("$a = 1, b = 2$", r"$\boxed{b=2, a=1}$", True),
        ("$a = 1, b = 2$", r"$\boxed{a=2, b=1}$", False),
        ("$x^2 + y^2 = 1$", r"$\boxed{y^2 + x^2 = 1}$", True),
        ("$k = 4$", "So $k = 4$.", True),
        (r"$x \ge 2$", r"We need $x \geq 2$.", True),
    ]),
    # Vectors and matrices.
    *_group("matrices", [
        (r"$\begin{pmatrix} 1 \\ 2 \end{pmatrix}$", r"$\boxed{\begin{pmatrix} 1 \\ 2 \end{pmatrix}}$", True),
        (r"$\begin{pmatrix} 1 \\ 2 \end{pmatrix}$", r"$\boxed{\begin{pmatrix} 2 \\ 1 \end{pmatrix}}$", False),
        (r"$\begin{pmatrix} 1 & 0 \\ 0 & 1 \end{pmatrix}$",
         r"$\boxed{\begin{bmatrix} 1 & 0 \\ 0 & 1 \end{bmatrix}}$", True),
        (r"$\begin{pmatrix} \frac{1}{2} \\ -1 \end{pmatrix}$", r"$\boxed{\begin{pmatrix} 0.5 \\ -1 \end{pmatrix}}$",
         True),
        (r"$\begin{pmatrix} 2 & 3 \\ 4 & 5 \end{pmatrix}$", r"\boxed{\begin{pmatrix} 2 & 4 \\ 3 & 5 \end{pmatrix}}",
         False),
        (r"$\begin{pmatrix} 3 \\ -1 \\ 2 \end{pmatrix}$",
         r"The vector is $\begin{pmatrix} 3 \\ -1 \\ 2 \end{pmatrix}$.", True),
        (r"$\begin{pmatrix} -1/3 \\ 2/3 \end{pmatrix}$", r"\boxed{\begin{pmatrix} -\frac13 \\ \frac23 \end{pmatrix}}",
         True),
        (r"$\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}$", r"\boxed{\begin{pmatrix} 1 & 2 \\ 3 & 5 \end{pmatrix}}",
         False),
        (r"$\begin{pmatrix} 2 \\ 4 \end{pmatrix}$", r"$\boxed{\begin{pmatrix} 1+1 \\ 2^2 \end{pmatrix}}$", True),
        ("$-2$", r"$\det\begin{pmatrix}1&2\\3&4\end{pmatrix} = \boxed{-2}$", True),
    ]),
    # A box in the middle of the solution, and the final answer stated after it.
    *_group("box before the final answer", [
        ("$5$", r"Let $n = \boxed{3}$ be the number of rows. Two more rows are added. The final answer is 5.", True),
        ("$3$", r"Let $n = \boxed{3}$ be the number of rows. Two more rows are added. The final answer is 5.", False),
        (r"$\frac{1}{2}$", r"The ratio is first $\boxed{2}$; inverting it, the final answer is $\frac{1}{2}$.", True),
        ("$10$", r"The partial sum is $\boxed{4}$. Adding 6 more, the final answer is $10$.", True),
        ("$4$", r"The partial sum is $\boxed{4}$. Adding 6 more, the final answer is $10$.", False),
        ("$9$", r"We get $\boxed{7}$ at first, but that misses two cases, so the final answer is 9.", True),
    ]),
    # Digits grouped with spaces, decimal commas, thousands commas, leading zeros.
    *_group("number formats", [
        ("$1000$", "The answer is 1 000.", True),
        ("$1000$", "There are 1 000 ways.", True),
        ("$1000000$", "The answer is 1 000 000.", True),
        ("$1000$", "The answer is 1 001.", False),
        ("$3.5$", "The answer is 3,5.", True),
        ("$3.5$", "The answer is 3,6.", False),
        ("$0.75$", "The answer is 0,75", True),
        ("$1234$", "The answer is 1,234.", True),
        ("$12345.6$", "The answer is 12,345.6", True),
        ("$1000$", r"$\boxed{1\,000}$", True),
        ("$1000$", r"$\boxed{1{,}000}$", True),
        ("$10080$", r"$\boxed{10,\!080}$", True),
        ("$25$", "The answer is 025.", True),
        ("$0.5$", "The answer is .5", True),
        ("$-4$", "The answer is -4.", True),
        (r"$50\%$", "The answer is 50%.", True),
    ]),
    # A gold written with several boxes: a worked solution's boxes are steps, the last is the answer, unless
    # boxes are joined into one answer.
    *_group("gold with several boxes", [
        (r"The first step gives $\boxed{4}$, so the answer is $\boxed{8}$.", r"$\boxed{8}$", True),
        (r"The first step gives $\boxed{4}$, so the answer is $\boxed{8}$.", r"$\boxed{4}$", False),
        (r"$x = \boxed{7}$; checking, $\boxed{7}$ satisfies the equation.", "The answer is 7.", True),
        (r"$\boxed{2}$ or $\boxed{-2}$", r"$\boxed{-2}$ and $\boxed{2}$", True),
        (r"$\boxed{2}$ or $\boxed{-2}$", r"$\boxed{2}$", False),
        (r"$\boxed{1}$ and then $\boxed{2}$", r"$\boxed{2}$", True),
    ]),
    # Reasoning models: only the response after </think> holds the answer.
    *_group("think blocks", [
        ("$5$", r"<think>Maybe $\boxed{3}$? No, recount.</think>The answer is $\boxed{5}$.", True),
        ("$3$", r"<think>Maybe $\boxed{3}$? No, recount.</think>The answer is $\boxed{5}$.", False),
        ("$12$", "<think>x is 5, so y is 7.</think>\n\nSo the total is 12.", True),
        ("$3$", r"<think>Let me try $\boxed{3}$, but I should check the other cases before", False),
    ]),
    # The text between the protocol's answer tags: a bare answer, read whole.
    *_group("delimited answers", [
        (r"\frac{7}{3}", r"\frac{7}{3}", True),
        (r"\frac{7}{3}", r"\dfrac{14}{6}", True),
        (r"\frac{7}{3}", "7/3", True),
        (r"\frac{7}{3}", r"\frac{3}{7}", False),
        (r"-\frac{7}{3}", r"-\frac{7}{3}", True),
        (r"3\sqrt{13}", r"\sqrt{117}", True),
        (r"3\sqrt{13}", "3", False),
        ("34", "34", True),
        ("34", "34.0", True),
        ("34", "43", False),
        ("x=2", "2", True),
        ("2", "x = 2", True),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \frac{\pi}{2})", True),
        (r"\left( 3, \frac{\pi}{2} \right)", r"(3, \pi)", False),
        ("1,-2", "-2, 1", True),
        ("3, 5, 7", "7", False),
        ("1000", "1 000", True),
        (r"\frac{1}{2}", r"$\frac{1}{2}$", True),
        (r"\frac{1}{2}", r"\boxed{\frac12}", True),
        ("p - q", "-q + p", True),
        ("p - q", "q - p", False),
        (r"\$32,\!348", "32348", True),
        (r"90^\circ", "90", True),
        (r"\text{Evelyn}", r"\text{Evelyn}", True),
        (r"\text{Evelyn}", r"\text{Navin}", False),
    ], delimited=True),
]

CATEGORIES = list(dict.fromkeys(case.category for case in CASES))
