"""The `rl` section: the T-GRPO stage's policy, rollout engine and launch, and videor1.rl's RLConfig under `train`."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..media import MediaRules
from ..rl.config import RLConfig
from .check import ConfigError, Section, above, at_least, attention, device, one_of, require

ROLLOUT_BACKENDS = ("transformers", "vllm")


@dataclass(frozen=True)
class RLParams(Section):
    policy: str = "models/sft"  # the SFT model; a frozen copy is the reference
    rollout_backend: str = "transformers"  # transformers (in process) | vllm (colocated engine, synced every step)
    nproc: int = 1  # processes; > 1: the stage relaunches itself under torchrun (FSDP2)
    tensor_parallel_size: int = 1  # vllm: each rank's own colocated engine, on its own GPU
    gpu_memory_utilization: float = 0.3  # vllm: share of the GPU the engine may take while it samples
    vllm_sleep: bool = False  # vllm: the engine sleeps (weights to host RAM, KV cache freed) during the update
    max_model_len: int | None = None  # vllm: the engine's context; null: max_prompt_length + max_completion_length
    media: MediaRules = field(default_factory=MediaRules)
    device: str = "cpu"  # the ranks take their device from the launch (cuda when there is one)
    threads: int = 1
    attn_implementation: str = "sdpa"
    train: RLConfig = field(default_factory=RLConfig)

    def __post_init__(self):
        one_of(self, "rollout_backend", ROLLOUT_BACKENDS)
        device(self)
        at_least(self, 1, "nproc", "threads", "max_model_len")
        above(self, 0.0, "gpu_memory_utilization")
        require(
            self.gpu_memory_utilization <= 1.0,
            "gpu_memory_utilization",
            f"must be in (0, 1] (got {self.gpu_memory_utilization})",
        )
        require(
            self.tensor_parallel_size == 1,
            "tensor_parallel_size",
            f"must be 1: each rank runs its own engine on its own GPU (got {self.tensor_parallel_size})",
        )
        require(not self.vllm_sleep or self.rollout_backend == "vllm", "vllm_sleep", "true needs rollout_backend: vllm")
        if self.max_model_len is not None:
            require(
                self.max_model_len > self.train.max_completion_length,
                "max_model_len",
                f"must exceed train.max_completion_length ({self.train.max_completion_length}) to leave room for a "
                f"prompt, got {self.max_model_len}",
            )
        require(
            self.train.prompts_per_step % self.nproc == 0,
            "train.prompts_per_step",
            f"must be a multiple of nproc ({self.nproc}): each rank takes the same share (got {self.train.prompts_per_step})",
        )
        attention(self)

    def model_dir(self) -> str | None:
        return self.policy

    def check_model(self, positions: int) -> None:
        t = self.train
        require(
            t.max_prompt_length + t.max_completion_length <= positions,
            "train.max_prompt_length",
            f"+ train.max_completion_length ({t.max_prompt_length} + {t.max_completion_length}) must be <= the "
            f"model's max_position_embeddings ({positions})",
        )
        if self.max_model_len is not None:
            require(
                self.max_model_len <= positions,
                "max_model_len",
                f"must be <= the model's max_position_embeddings ({positions}), got {self.max_model_len}",
            )

    def check_machine(self) -> None:
        if self.vllm_sleep:
            import torch

            if not torch.cuda.is_available():
                raise ConfigError(
                    "vllm_sleep", "true needs vLLM's CUDA build on a GPU (the CPU build has no sleep mode)"
                )

    def engine_len(self) -> int:
        """The vLLM engine's context: ``max_model_len``, else the longest prompt plus the longest completion."""
        return self.max_model_len or self.train.max_prompt_length + self.train.max_completion_length
