"""The one small interface every generation backend implements (eval, CoT teacher, RL rollouts)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from ..media import Medium


@dataclass(frozen=True)
class SamplingConfig:
    """Decoding settings, the same on every backend. Defaults are the paper's eval decoding (spec section 6).

    Every knob is explicit: a checkpoint's own ``generation_config.json`` (Qwen2.5-VL-7B-Instruct ships
    ``repetition_penalty`` 1.05, ``top_k`` 1) never applies, so RL rollouts are samples of the policy itself.
    """

    temperature: float = 0.01
    top_p: float = 0.001
    top_k: int | None = None  # None: off
    repetition_penalty: float = 1.0
    max_new_tokens: int = 1024
    n: int = 1  # completions per request
    seed: int = 0  # request i's completion k is sampled with seed + i * n + k (vLLM); one seeded batch (transformers)


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


class PromptTooLong(ValueError):
    """A request whose prompt does not fit; callers skip and log such rows before generating (``prompt_length``)."""


class GenerationBackend(Protocol):
    processor: object  # the model's processor: prompts are templated and measured with it

    def prompt_limit(self, sampling: SamplingConfig) -> int:
        """The longest prompt (in tokens, placeholders expanded) that leaves room for ``max_new_tokens``."""
        ...

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig) -> list[list[Completion]]:
        """``sampling.n`` completions for each request, in request order."""
        ...

    def sync_weights(self, named_tensors: Iterable[tuple[str, object]]) -> None:
        """Take new weights (full tensors by transformers name, every one of them), consuming the iterator once in
        order: it may be a stream gathered from shards as it is read (``videor1.distributed.full_tensors``)."""
        ...

    def offload(self) -> None:
        """Free the device memory generation holds until the next ``sync_weights`` or ``generate`` (vLLM's sleep
        mode); a no-op where there is nothing to free."""
        ...
