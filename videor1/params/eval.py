"""The `eval` section: the benchmark files, frame counts and protocol every model is evaluated under, and the engine."""

from __future__ import annotations

import typing
from dataclasses import dataclass, field
from typing import Any

from ..eval.protocol import KNOBS, PROTOCOLS, EvalProtocol, resolve_protocol
from ..media.sampling import FRAME_FACTOR
from .check import (
    DTYPES,
    ConfigError,
    Section,
    above,
    at_least,
    attention,
    convert,
    device,
    nearest,
    one_of,
    require,
)

BACKENDS = ("transformers", "vllm")
BENCHMARKS = ("mvbench", "tempcompass", "videomme", "videommmu", "vsibench", "mmvu")


@dataclass(frozen=True)
class FrameCacheParams:
    """Decoded, resized frames shared by frame counts and models; LRU beyond ``max_gb``."""

    dir: str | None = None  # null: no cache
    max_gb: float = 20.0

    def __post_init__(self):
        above(self, 0, "max_gb")


@dataclass(frozen=True)
class EvalParams(Section):
    benchmarks_dir: str = "data/synth"  # eval_<benchmark>.json files; row paths are relative to it
    benchmarks: list[str] = field(default_factory=lambda: list(BENCHMARKS))
    frames: list[int] = field(default_factory=lambda: [16, 32, 64])  # max frames, one eval per count
    protocol: str = "reference"  # reference | paper | spec (docs/eval-protocol.md)
    protocol_overrides: dict[str, Any] = field(default_factory=dict)  # knobs that differ, named beside every number
    frame_cache: FrameCacheParams | None = field(default_factory=FrameCacheParams)
    seed: int = 0
    task_field: str = "data_source"  # VSI-Bench's score is the mean over these tasks
    backend: str = "transformers"  # transformers | vllm
    tensor_parallel_size: int = 1  # vllm: GPUs per engine
    max_model_len: int = 32768  # vllm: the engine's context (prompt + max_new_tokens); longer prompts are skipped
    device: str = "cpu"
    dtype: str = "float32"
    batch_size: int = 16
    media_workers: int = 2
    threads: int = 1
    nproc: int = 1  # engines: worker processes (one per GPU; on CPU, processes) sharing the batches
    attn_implementation: str = "sdpa"  # the transformers backend's; vLLM chooses its own

    NESTED_KNOBS = {"protocol_overrides": KNOBS}  # a typo of a protocol knob here is pointed there

    def __post_init__(self):
        one_of(self, "backend", BACKENDS)
        one_of(self, "protocol", PROTOCOLS)
        one_of(self, "dtype", DTYPES)
        device(self)
        at_least(self, 1, "tensor_parallel_size", "max_model_len", "batch_size", "media_workers", "threads", "nproc")
        require(bool(self.benchmarks), "benchmarks", "must name at least one benchmark")
        require(len(set(self.benchmarks)) == len(self.benchmarks), "benchmarks", f"repeat a name: {self.benchmarks}")
        require(bool(self.frames), "frames", "must list at least one frame count")
        require(len(set(self.frames)) == len(self.frames), "frames", f"repeat a count: {self.frames}")
        for i, frames in enumerate(self.frames):  # Qwen2.5-VL embeds frames in pairs: fewer than 2 samples none
            require(frames >= FRAME_FACTOR, f"frames[{i}]", f"must be >= {FRAME_FACTOR} (got {frames})")
        object.__setattr__(self, "protocol_overrides", self._overrides())
        protocol = self.protocol_config()
        if self.backend == "vllm":
            require(
                self.max_model_len > protocol.max_new_tokens,
                "max_model_len",
                f"must exceed the protocol's max_new_tokens ({protocol.max_new_tokens}), got {self.max_model_len}",
            )
        if self.backend == "transformers":
            attention(self)

    def _overrides(self) -> dict:
        """The overrides with each value checked as the protocol's field it replaces."""
        hints = typing.get_type_hints(EvalProtocol)
        out = {}
        for name, value in self.protocol_overrides.items():
            key = f"protocol_overrides.{name}"
            require(name in KNOBS, key, f"not a knob of a protocol; {nearest(name, KNOBS)}")
            out[name] = convert(hints[name], value, key)
        return out

    def protocol_config(self) -> EvalProtocol:
        """The named protocol with the overrides applied, its ranges and media rules checked."""

        def key(name: str) -> str:
            return f"protocol_overrides.{name}" if name in self.protocol_overrides else "protocol"

        try:
            protocol = resolve_protocol(self.protocol, self.protocol_overrides)
            protocol.rules(max(self.frames))
        except ConfigError as err:  # a media rule (videor1.media.MediaRules) the overrides broke
            raise ConfigError(key(err.key), f"{err.key} {err.reason}") from None
        for name, ok, rule in (
            ("temperature", protocol.temperature >= 0, ">= 0"),
            ("top_p", 0 < protocol.top_p <= 1, "in (0, 1]"),
            ("max_new_tokens", protocol.max_new_tokens >= 1, ">= 1"),
        ):
            require(ok, key(name), f"{name} must be {rule} (got {getattr(protocol, name)!r})")
        return protocol

    def model_dir(self) -> str | None:
        return None  # the model to evaluate is the stage's argument

    def check_model(self, positions: int) -> None:
        if self.backend == "vllm":
            require(
                self.max_model_len <= positions,
                "max_model_len",
                f"must be <= the model's max_position_embeddings ({positions}), got {self.max_model_len}",
            )

    def check_machine(self) -> None:
        if self.nproc > 1 and self.device.startswith("cuda"):
            from ..distributed import gpu_groups

            try:
                gpu_groups(self.nproc, self.tensor_parallel_size)
            except ValueError as err:
                raise ConfigError("nproc", str(err)) from None
