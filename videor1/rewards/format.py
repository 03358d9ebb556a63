"""The format reward of spec section 3."""

from __future__ import annotations

import re
from collections.abc import Sequence

FORMAT = re.compile(r"<think>.*?</think>\s*<answer>.*?</answer>", re.DOTALL)


def format_reward(completion: str) -> float:
    """1 when the whole completion is ``<think>…</think>`` then ``<answer>…</answer>``, nothing before or after."""
    if not isinstance(completion, str):
        return 0.0
    return 1.0 if FORMAT.fullmatch(completion) else 0.0


def format_rewards(completions: Sequence[str]) -> list[float]:
    return [format_reward(c) for c in completions]
