"""Where a run of the rl stage writes: the pipeline's paths, or one experiment run's folder under runs/."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class RLOutputs:
    model: Path = Path("models/rl")
    checkpoints: Path = Path("models/rl-checkpoints")  # working state (and tensorboard's): kept, ignored by git
    plot: Path = Path("plots/rl.csv")
    metrics: Path = Path("metrics/rl.json")
    tensorboard: Path = Path("logs/rl")
    record: str = "rl"  # the run record: metrics/run/<record>.json

    @classmethod
    def of_run(cls, name: str) -> RLOutputs:
        root = Path("runs") / name
        return cls(root / "model", root / "checkpoints", root / "rl.csv", root / "rl.json", root / "logs", f"rl@{name}")
