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


def mean_relative_accuracy_float32(pred: float, target: float) -> float:
    """MRA as the public eval script computes it, in float32: thresholds ``torch.arange(0.5, 0.975, 0.05)``,
    ``|pred − target| / (|target| + 1e-8) < 1 − θ``. Its 1 − 0.95 is 0.0500000119 in float32, so a 5 % error
    counts at θ = 0.95 (9.5 for 10 scores 1.0; the exact rule gives 0.9), and a target of 0 divides by 1e-8.
    A non-finite pred or target scores 0, as both rules agree."""
    import torch

    try:
        if not (math.isfinite(pred) and math.isfinite(target)):
            return 0.0
    except TypeError:
        return 0.0
    p, t = torch.tensor(pred, dtype=torch.float32), torch.tensor(target, dtype=torch.float32)
    relative = torch.abs(p - t) / (torch.abs(t) + 1e-8)
    thresholds = torch.arange(0.5, 0.95 + 0.05 / 2, 0.05, dtype=torch.float32)
    return float((relative < (1 - thresholds)).float().mean())


MRA_RULES = {"exact": mean_relative_accuracy, "float32": mean_relative_accuracy_float32}


def output_answer(output: str) -> str:
    """What benchmark scoring reads: the first answer tag's text, or the whole output (trimmed) without one."""
    answer = extract_answer(output)
    return answer if answer is not None else (output.strip() if isinstance(output, str) else "")


def score_prediction(output: str, solution: str, problem_type: str, *, mra: str = "exact") -> float:
    """Score one model output: regression by MRA (``mra``: "exact" or the script's "float32"), every other type
    by its training rule (spec section 6)."""
    answer = output_answer(output)
    if problem_type == "regression":
        pred, target = (
            parse_number(answer),
            parse_number(solution_answer(solution) if isinstance(solution, str) else ""),
        )
        if pred is None or target is None:
            return 0.0
        return MRA_RULES[mra](pred, target)
    return score_answer(answer, solution, problem_type)
