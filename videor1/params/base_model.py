"""The `base_model` section: build a tiny random model of a family (``kind: tiny``) or link a local model directory
(whose config.json names its family)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..models import FAMILIES, TinyModelConfig, family_of
from .check import ConfigError, Section, at_least, one_of, require


@dataclass(frozen=True)
class TokenizerParams:
    kind: str = "bpe"  # bpe: trained here on the corpus below; qwen: Qwen2.5's real 151,665-token vocabulary
    vocab_size: int = 768  # bpe: tokens including the 256 bytes (the special tokens come on top)
    corpus: list[str] = field(default_factory=list)  # row files whose prompts and answers it encodes compactly
    rationale_facts: str | None = None  # and the scripted teacher's rationales for them

    def __post_init__(self):
        one_of(self, "kind", ("bpe", "qwen"))
        if self.kind == "bpe":
            at_least(self, 256, "vocab_size")  # the 256 byte symbols at least


@dataclass(frozen=True)
class ProcessorParams:
    image_min_pixels: int = 3136
    image_max_pixels: int = 7056
    video_min_pixels: int = 3136
    video_max_pixels: int = 3136

    def __post_init__(self):
        at_least(self, 1, "image_min_pixels", "video_min_pixels")
        for kind in ("image", "video"):
            low, high = getattr(self, f"{kind}_min_pixels"), getattr(self, f"{kind}_max_pixels")
            require(low <= high, f"{kind}_max_pixels", f"must be >= {kind}_min_pixels ({low}), got {high}")


@dataclass(frozen=True)
class BaseModelParams(Section):
    kind: str = "tiny"  # tiny: built here from a seed; local: a model directory on this machine, linked
    family: str = "qwen2_5_vl"  # qwen2_5_vl | qwen3_vl | qwen3_5: the tiny model's, or the one the directory must hold
    path: str | None = None  # local: that directory (never downloaded)
    seed: int = 0
    threads: int = 1
    tokenizer: TokenizerParams = field(default_factory=TokenizerParams)
    model: TinyModelConfig = field(default_factory=TinyModelConfig, metadata={"exclude": ("seed",)})
    processor: ProcessorParams = field(default_factory=ProcessorParams)

    def __post_init__(self):
        one_of(self, "kind", ("tiny", "local"))
        one_of(self, "family", tuple(FAMILIES))
        at_least(self, 1, "threads")
        if self.kind == "local" and not self.path:
            raise ConfigError("path", "kind: local needs the model directory's path")

    def check_local_family(self) -> None:
        """The linked directory holds the family the params name (read from its config.json)."""
        found = family_of(self.path).name
        require(found == self.family, "family", f"is {self.family}, but {self.path}/config.json holds a {found} model")

    def tiny_model(self) -> TinyModelConfig:
        return replace(self.model, seed=self.seed)
