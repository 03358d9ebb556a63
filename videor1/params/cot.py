"""The `cot` section: which teacher writes the rationales, and how it samples."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..cot.scripted import SPOILS
from ..generation import SamplingConfig
from ..media import MediaRules
from .check import DTYPES, Section, at_least, attention, between, device, nearest, one_of, require

TEACHERS = ("scripted", "transformers", "vllm")


@dataclass(frozen=True)
class ScriptedParams:
    """The scripted teacher (synthetic rows): rationales from the generator's facts, some spoiled on purpose."""

    facts: str = "data/synth/facts.jsonl"
    split: str = "train"
    seed: int = 0
    spoil: dict[str, float] = field(default_factory=dict)  # spoil -> share of rows

    def __post_init__(self):
        for name, share in self.spoil.items():
            require(name in SPOILS, f"spoil.{name}", f"unknown spoil; {nearest(name, SPOILS)}")
            require(0.0 <= share <= 1.0, f"spoil.{name}", f"must be in [0.0, 1.0] (got {share!r})")
        total = sum(self.spoil.values())
        require(total <= 1.0, "spoil", f"shares must sum to at most 1 (got {total:g})")


@dataclass(frozen=True)
class CotParams(Section):
    teacher: str = "scripted"  # scripted | transformers | vllm
    max_attempts: int = 3  # a row the teacher fails on is retried on later runs, up to this many attempts
    scripted: ScriptedParams = field(default_factory=ScriptedParams)
    model: str = "models/base"  # transformers | vllm teachers: a local model directory
    temperature: float = 1.0
    top_p: float = 0.95
    max_new_tokens: int = 512
    max_model_len: int = 8192  # the teacher's context: prompt + max_new_tokens
    tensor_parallel_size: int | str = 1  # vllm: GPUs per engine; auto: every visible GPU
    media: MediaRules = field(default_factory=MediaRules)
    seed: int = 0
    batch_size: int = 16
    media_workers: int = 2
    device: str = "cpu"
    dtype: str = "float32"
    threads: int = 1
    attn_implementation: str = "sdpa"

    def __post_init__(self):
        one_of(self, "teacher", TEACHERS)
        one_of(self, "dtype", DTYPES)
        device(self)
        at_least(self, 0, "temperature")
        between(self, 0.0, 1.0, "top_p")
        at_least(self, 1, "max_attempts", "max_new_tokens", "batch_size", "media_workers", "threads")
        require(
            self.max_model_len > self.max_new_tokens,
            "max_model_len",
            f"must exceed max_new_tokens ({self.max_new_tokens}) to leave room for a prompt, got {self.max_model_len}",
        )
        tp = self.tensor_parallel_size
        require(
            tp == "auto" or (isinstance(tp, int) and tp >= 1),
            "tensor_parallel_size",
            f"must be a whole number >= 1 or auto (got {tp!r})",
        )
        attention(self)

    def model_dir(self) -> str | None:
        return None if self.teacher == "scripted" else self.model

    def check_model(self, positions: int) -> None:
        require(
            self.max_model_len <= positions,
            "max_model_len",
            f"must be <= the model's max_position_embeddings ({positions}), got {self.max_model_len}",
        )

    def sampling(self) -> SamplingConfig:
        return SamplingConfig(
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens, seed=self.seed
        )
