"""What the trainer's step records become: the curve's columns, TensorBoard scalars and a line now and then, the
final metrics (first and last window means) and the run record's timings."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from ..curves import window_mean

# what a step computes; its timings (time_rollout_s, ...) go to TensorBoard and the run record, never to the curve
CURVE_FIELDS = [
    "step",
    "reward",
    "accuracy",
    "format",
    "temporal_fired",
    "shuffled_accuracy",
    "completion_length",
    "distinct_completions",
    "kl",
    "loss",
    "all_correct",
    "all_wrong",
    "grad_norm",
    "learning_rate",
]
TIMES = ["time_rollout_s", "time_scoring_s", "time_update_s"]


def step_line(record: dict, steps: int) -> str:
    head = f"rl step {record['step']}/{steps}: "
    if not record["groups"]:  # every rank skipped every row of the step (logged in skipped.jsonl): no update
        return head + "no group (every row of the step was skipped)"
    return (
        head + f"reward {record['reward']:.3f} accuracy {record['accuracy']:.3f} format {record['format']:.3f} "
        f"length {record['completion_length']:.1f} kl {record['kl']:.4f} "
        f"({record['time_rollout_s']:.2f}+{record['time_scoring_s']:.2f}+{record['time_update_s']:.2f} s)"
    )


class StepLog:
    """The main rank's ``on_step``: every record to TensorBoard, a line every ~5% of the steps; keeps this run's
    records (the trainer's also hold those of the runs it resumed) for the run record."""

    def __init__(self, tensorboard: Path, steps: int):
        from torch.utils.tensorboard import SummaryWriter

        self.writer, self.steps, self.ran = SummaryWriter(str(tensorboard)), steps, []

    def __call__(self, record: dict) -> None:
        self.ran.append(record)
        for key in CURVE_FIELDS[1:] + TIMES:
            if record.get(key) is not None:
                self.writer.add_scalar(f"rl/{key}", record[key], record["step"])
        if record["step"] % max(1, self.steps // 20) == 0 or record["step"] == self.steps:
            print(step_line(record, self.steps), flush=True)

    def close(self) -> None:
        self.writer.close()

    def timings(self) -> dict:
        """Seconds per step of this run, in all and per phase (the run record: no stage reads it)."""

        def per_step(values: list[float]) -> float | None:
            return round(sum(values) / len(values), 4) if values else None

        return {
            "steps_this_run": len(self.ran),
            "seconds_per_step": per_step([sum(r[t] for t in TIMES) for r in self.ran]),
            **{f"{t.removesuffix('_s')}_per_step_s": per_step([r[t] for r in self.ran]) for t in TIMES},
        }


def final_metrics(records: Sequence[dict], *, steps: int, temporal: bool, skip_log: Path) -> dict:
    """metrics/rl.json: the first and last fifth of the steps' means (reward, accuracy, length; kl at the end),
    how often the temporal bonus fired, and the rows skipped."""
    window = max(1, len(records) // 5)

    def mean(key: str, n: int, last: bool) -> float | None:
        return window_mean([r.get(key) for r in records], n, last, digits=4)

    first = {f"{k}_first_window": mean(k, window, False) for k in ("reward", "accuracy", "completion_length")}
    last = {f"{k}_last_window": mean(k, window, True) for k in ("reward", "accuracy", "completion_length", "kl")}
    return {
        "steps": steps,
        "temporal": temporal,
        "window_steps": window,
        **first,
        **last,
        "temporal_fired_share": mean("temporal_fired", len(records), True),
        "skipped_rows": skip_log.read_text().count("\n") if skip_log.exists() else 0,
    }
