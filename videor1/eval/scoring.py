"""Benchmark scoring of spec section 6: one output against one solution."""

from __future__ import annotations

import math
from fractions import Fraction

from ..rewards import extract_answer, parse_number, score_answer, solution_answer

# θ ∈ {0.50, 0.55, …, 0.95}, exact: 1 − 0.95 in floating point is 0.05000000000000004,
# which would count a 5.0 % error as inside the strictest threshold.
MRA_THRESHOLDS = tuple(Fraction(50 + 5 * k, 100) for k in range(10))


def _exact(x: float) -> Fraction:
    # repr() is the shortest decimal that reads back as x: 9.5 and 0.1 stay the decimals they were written as.
    return Fraction(repr(float(x)))


def mean_relative_accuracy(pred: float, target: float) -> float:
    """MRA = mean over θ of [|pred − target| / |target| < 1 − θ], computed exactly.

    A target of 0 has no relative error: MRA is 1 when pred is 0 too, else 0.
    A non-finite pred or target scores 0.
    """
    try:
        if not (math.isfinite(pred) and math.isfinite(target)):
            return 0.0
    except TypeError:
        return 0.0
    p, t = _exact(pred), _exact(target)
    if t == 0:
        return 1.0 if p == 0 else 0.0
    relative = abs(p - t) / abs(t)
    return sum(relative < 1 - theta for theta in MRA_THRESHOLDS) / len(MRA_THRESHOLDS)


def output_answer(output: str) -> str:
    """What benchmark scoring reads: the first answer tag's text, or the whole output (trimmed) without one."""
    answer = extract_answer(output)
    return answer if answer is not None else (output.strip() if isinstance(output, str) else "")


def score_prediction(output: str, solution: str, problem_type: str) -> float:
    """Score one model output: regression by MRA, every other type by its training rule (spec section 6)."""
    answer = output_answer(output)
    if problem_type == "regression":
        pred, target = parse_number(answer), parse_number(solution_answer(solution) if isinstance(solution, str) else "")
        if pred is None or target is None:
            return 0.0
        return mean_relative_accuracy(pred, target)
    return score_answer(answer, solution, problem_type)
