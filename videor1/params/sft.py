"""The `sft` section: the SFT cold start's model, data and launch, and videor1.sft's SftConfig under `train`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..media import MediaRules
from ..sft import SftConfig
from .check import DTYPES, ConfigError, Section, at_least, attention, one_of, require


@dataclass(frozen=True)
class SftParams(Section):
    base_model: str = "models/base"
    media: MediaRules = field(default_factory=MediaRules)
    max_length: int | None = None  # longer sequences are skipped and logged, never truncated; null: no bound
    model_dtype: str = "float32"  # the weights' dtype (the master weights without DeepSpeed)
    nproc: int = 1  # processes, one per GPU; > 1: the stage relaunches itself under torchrun
    threads: int = 1
    attn_implementation: str = "sdpa"
    train: SftConfig = field(default_factory=SftConfig, metadata={"exclude": ("output_dir",)})

    def __post_init__(self):
        one_of(self, "model_dtype", DTYPES)
        at_least(self, 1, "max_length", "nproc", "threads")
        attention(self)
        if self.model_dtype != "float32" and not self.train.deepspeed:
            raise ConfigError(
                "model_dtype",
                f"{self.model_dtype} without DeepSpeed would train {self.model_dtype} weights directly, and updates "
                "of ~1e-6 vanish below their spacing; keep model_dtype: float32 (the master weights) with "
                "train.bf16: true (bf16 compute), or set train.deepspeed, which keeps fp32 master weights itself",
            )

    def model_dir(self) -> str | None:
        return self.base_model

    def check_model(self, positions: int) -> None:
        if self.max_length is not None:
            require(
                self.max_length <= positions,
                "max_length",
                f"must be <= the model's max_position_embeddings ({positions}), got {self.max_length}",
            )


@dataclass(frozen=True)
class PerceiveParams(SftParams):
    """The `perceive` section (the toy, issue 26): SftParams for a direct-answer SFT of the base on a synth
    stream (``rows``, paths relative to ``media_root``), before the CoT cold start."""

    rows: str = "data/synth/pretrain.json"
    media_root: str = "data/synth"
