"""The report stages' knobs: `eval_report` (the paper's rows beside ours) and the toy report's experiment."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from ..rl.config import RLConfig
from .check import Section, at_least


@dataclass(frozen=True)
class EvalReportParams(Section):
    paper_rows: dict[str, str] = field(default_factory=dict)  # our model -> the paper's row beside it
    paper_frames: dict[int, int] = field(default_factory=dict)  # our frame count -> the paper's column beside it
    notes: list[str] = field(default_factory=list)
    # from the file's top level, not knobs of the section: the models evaluated (in report order), the profile
    models: tuple[str, ...] = ()
    profile: str = ""


@dataclass(frozen=True)
class ExperimentRun:
    """One RL run of the toy's pre-registered comparison: the `rl.train` knobs it sets (`--set train.<knob>`)."""

    temporal: bool
    seed: int
    alpha: float | None = None  # None: rl.train.alpha

    def __post_init__(self):
        at_least(self, 0, "alpha")

    def train(self, base: RLConfig) -> RLConfig:
        """``base`` with this run's knobs: what its `python -m tasks.rl --set ...` trains with."""
        knobs = {"temporal": self.temporal, "seed": self.seed}
        return replace(base, **knobs, **({} if self.alpha is None else {"alpha": self.alpha}))


@dataclass(frozen=True)
class Experiment:
    runs: dict[str, ExperimentRun]
    followup: dict[str, ExperimentRun] = field(default_factory=dict)  # registered before the runs' results


@dataclass(frozen=True)
class ToyReportParams(Section):
    """What the toy report reads: the experiment (toy/params.yaml `experiment`), the RL runs' shared `rl.train` and
    the eval's frame counts (its first and last are compared)."""

    experiment: Experiment
    train: RLConfig
    frames: list[int]
