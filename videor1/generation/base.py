"""The one small interface every generation backend implements (eval, CoT teacher, RL rollouts)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from ..media import Medium


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings. Defaults are the paper's eval decoding (spec section 6)."""

    temperature: float = 0.01
    top_p: float = 0.001
    max_new_tokens: int = 1024
    n: int = 1  # completions per request
    seed: int = 0


@dataclass
class GenerationRequest:
    """A chat (its user turn holds one ``{"type": "video"|"image"}`` placeholder) and that medium."""

    messages: list[dict]
    medium: Medium | None = None


@dataclass
class Completion:
    text: str  # decoded without special tokens
    token_ids: list[int]  # up to and including the first end token
    finished: bool  # False when it stopped at max_new_tokens


class GenerationBackend(Protocol):
    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig) -> list[list[Completion]]:
        """``sampling.n`` completions for each request, in request order."""
        ...
