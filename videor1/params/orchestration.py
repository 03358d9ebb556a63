"""The `orchestration` section (flows/, prefect.yaml): not a parameter of any DVC stage."""

from __future__ import annotations

from dataclasses import dataclass

from .check import at_least


@dataclass(frozen=True)
class OrchestrationParams:
    retries: int = 0  # per stage task
    retry_delay_seconds: float = 0.0
    gpu_python: str | None = None  # the interpreter of the GPU stages (cot, sft, rl, eval); null: the worker's
    remote: str | None = None  # a DVC remote's name: each worker runs in its own clone (README "Runs across machines")
    git_remote: str = "origin"  # where the run's branch is pushed

    def __post_init__(self):
        at_least(self, 0, "retries", "retry_delay_seconds")
