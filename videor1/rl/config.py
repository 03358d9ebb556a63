"""T-GRPO hyperparameters. Defaults are the paper's (spec sections 1 and 4)."""

from __future__ import annotations

from dataclasses import dataclass

from transformers import SchedulerType

from ..params.check import above, at_least, between, one_of, require
from .algorithm import LOSS_AGGREGATIONS

COMPUTE_DTYPES = ("float32", "bfloat16")


@dataclass
class RLConfig:
    steps: int = 1200
    prompts_per_step: int = 1  # groups per step (the paper: per-device batch 1)
    num_generations: int = 8  # G, ordered completions per prompt; video prompts add G/2 on shuffled frames
    temporal: bool = True  # False: plain GRPO (no shuffled group, no temporal bonus)
    alpha: float = 0.3
    mu: float = 0.8
    len_control: bool = True
    length_bonus: float = 0.2
    len_min: int = 320
    len_max: int = 512
    beta: float = 0.04
    loss_aggregation: str = "sequence"  # sequence (spec) | token (DAPO) | dr_grpo
    learning_rate: float = 1e-6
    lr_scheduler: str = "cosine"
    warmup_steps: int = 0
    weight_decay: float = 0.01
    max_grad_norm: float = 5.0
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int | None = None  # None: off; rollouts are samples of the policy, not of the checkpoint's decoding
    repetition_penalty: float = 1.0
    max_completion_length: int = 768
    max_prompt_length: int = 16384  # longer prompts are skipped and logged with their length
    save_steps: int = 100
    sample_dump_steps: int = 0  # > 0: write a few completions every that many steps
    gradient_checkpointing: bool = False  # recompute each layer in backward; log-probs then use whole sequences
    compute_dtype: str = "float32"  # bfloat16: autocast forwards over fp32 master weights and optimizer state
    sync_bucket_mb: int = 1024  # the rollout engine's weight sync gathers full tensors this many MiB at a time
    seed: int = 0

    def __post_init__(self):
        at_least(self, 1, "steps", "prompts_per_step", "max_completion_length", "max_prompt_length", "save_steps")
        at_least(self, 2, "num_generations")  # a group of one has no advantage: every completion would score 0
        at_least(self, 0, "alpha", "mu", "length_bonus", "len_min", "beta", "warmup_steps", "weight_decay")
        at_least(self, 0, "sample_dump_steps", "sync_bucket_mb")
        above(self, 0, "learning_rate", "max_grad_norm", "temperature", "repetition_penalty")
        between(self, 0.0, 1.0, "top_p")
        above(self, 0, "top_p")
        at_least(self, 1, "top_k")
        require(self.len_min <= self.len_max, "len_max", f"must be >= len_min ({self.len_min}), got {self.len_max}")
        one_of(self, "loss_aggregation", LOSS_AGGREGATIONS)
        one_of(self, "lr_scheduler", [s.value for s in SchedulerType])
        one_of(self, "compute_dtype", COMPUTE_DTYPES)
