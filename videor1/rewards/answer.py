"""Reading answers out of model text: the answer tag and numbers (spec section 3)."""

from __future__ import annotations

import math
import re

ANSWER_TAG = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)
# A plain decimal number, optionally signed, with an optional exponent. Anything else
# (words, "nan", "inf", "1/2", "3 apples") does not parse: a reward never guesses.
_NUMBER = re.compile(r"[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?")


def extract_answer(text: str) -> str | None:
    """The trimmed text inside the first ``<answer>…</answer>``, or None when there is none.

    Non-greedy, like the public code: ``<answer><answer>A</answer></answer>`` gives ``<answer>A``.
    """
    if not isinstance(text, str):
        return None
    match = ANSWER_TAG.search(text)
    return match.group(1).strip() if match else None


def solution_answer(solution: str) -> str:
    """The ground truth's answer: the tag's text, or the whole solution when it has no tag."""
    answer = extract_answer(solution)
    return answer if answer is not None else str(solution).strip()


def parse_number(text: str) -> float | None:
    """A finite float from ``text`` after removing thousands commas, or None."""
    if not isinstance(text, str):
        return None
    cleaned = text.replace(",", "").strip()
    if not _NUMBER.fullmatch(cleaned):
        return None
    value = float(cleaned)
    return value if math.isfinite(value) else None


def unscorable(solution: str, problem_type: str) -> str | None:
    """Why a row can never score, or None: a numerical or regression solution that is not a number is a data
    error (collect quarantines it; eval lists such rows instead of scoring every model 0 on them)."""
    if problem_type in ("numerical", "regression"):
        answer = solution_answer(solution) if isinstance(solution, str) else ""
        if parse_number(answer) is None:
            return f"{problem_type} solution {answer!r} is not a number"
    return None
