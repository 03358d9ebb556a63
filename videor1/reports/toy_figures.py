"""The toy report's figures (reports/toy-figures/*.png): the RL curves per run and method, and paired dots."""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .figures import save_figure, smooth  # noqa: E402
from .toy import METHOD_LABELS, Run, ToyReport  # noqa: E402

METHOD_COLORS = {"tgrpo": "tab:red", "grpo": "tab:blue", "tgrpo_a1": "tab:purple"}


def plot_overlay(
    runs: Sequence[Run],
    column: str,
    target: Path,
    *,
    title: str,
    ylabel: str,
    window: int,
    methods: Sequence[str] = ("tgrpo", "grpo"),
) -> Path:
    """One line per run (thin, smoothed over ``window`` steps), the mean over seeds per method in bold."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    for method in methods:
        mine = [r for r in runs if r.method == method]
        if not mine:
            continue
        color = METHOD_COLORS.get(method)
        series = []
        for r in mine:
            xs = [row["step"] for row in r.curve]
            ys = smooth([row.get(column) for row in r.curve], window)
            ax.plot(xs, ys, color=color, alpha=0.35, linewidth=1)
            series.append((xs, ys))
        n = min(len(s[0]) for s in series)
        mean = [
            statistics.fmean(v for v in (s[1][i] for s in series) if v is not None)
            if any(s[1][i] is not None for s in series)
            else None
            for i in range(n)
        ]
        ax.plot(
            series[0][0][:n],
            mean,
            color=color,
            linewidth=2.5,
            label=f"{METHOD_LABELS.get(method, method)}: mean of {len(mine)} seeds",
        )
    ax.set_xlabel("RL step")
    ax.set_ylabel(f"{ylabel} (mean of {window} steps)")
    return save_figure(fig, ax, target, title=title, legend_size=8)


def plot_paired(
    rows: Sequence[tuple[str, float, float]], target: Path, *, title: str, ylabel: str, labels: tuple[str, str]
) -> Path:
    """One pair of dots per row (a seed, or a run), joined by a line: left ``labels[0]``, right ``labels[1]``."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8), dpi=100)
    for name, left, right in rows:
        ax.plot([0, 1], [left, right], marker="o", linewidth=1.5, label=name)
    lefts, rights = [r[1] for r in rows], [r[2] for r in rows]
    ax.plot(
        [0, 1],
        [statistics.fmean(lefts), statistics.fmean(rights)],
        color="black",
        linewidth=3,
        marker="s",
        label="mean",
    )
    ax.set_xticks([0, 1], labels)
    ax.set_xlim(-0.3, 1.3)
    ax.set_ylabel(ylabel)
    return save_figure(fig, ax, target, title=title, legend_size=7)


def draw_figures(report: ToyReport, runs: Sequence[Run], followups: Sequence[Run], folder: Path) -> dict[str, Path]:
    """Every figure of the report, by the name the Markdown links it under."""
    few, many, window = report.few, report.many, report.smooth
    folder.mkdir(parents=True, exist_ok=True)
    return {
        "accuracy": plot_overlay(
            runs,
            "accuracy",
            folder / "accuracy.png",
            window=window,
            title="1. Accuracy reward during RL",
            ylabel="accuracy reward",
        ),
        "length": plot_overlay(
            runs,
            "completion_length",
            folder / "length.png",
            window=window,
            title="2. Response length during RL",
            ylabel="tokens",
        ),
        "temporal": plot_overlay(
            runs,
            "temporal_fired",
            folder / "temporal_bonus.png",
            window=window,
            methods=("tgrpo",),
            title="T-GRPO: share of groups given the temporal bonus",
            ylabel="bonus rate",
        ),
        "shuffled": plot_overlay(
            runs,
            "shuffled_accuracy",
            folder / "shuffled_accuracy.png",
            window=window,
            methods=("tgrpo",),
            title="T-GRPO: accuracy on shuffled frames",
            ylabel="shuffled-group accuracy",
        ),
        "kl": plot_overlay(runs, "kl", folder / "kl.png", window=window, title="KL to the SFT model", ylabel="KL"),
        "followup": plot_overlay(
            [*runs, *followups],
            "temporal_fired",
            folder / "followup_bonus.png",
            window=window,
            methods=[m for m in report.methods if m != "grpo"],
            title="Temporal bonus rate: alpha 0.3 against 1.0",
            ylabel="bonus rate",
        ),
        "order": plot_paired(
            [(f"seed {s}", v["grpo"], v["tgrpo"]) for s, v in report.metrics["tgrpo_vs_grpo"]["per_seed"].items()],
            folder / "order_paired.png",
            labels=("GRPO", "T-GRPO"),
            title=f"3. Order-dependent eval, greedy, {few} frames",
            ylabel="accuracy %",
        ),
        "frames": plot_paired(
            [(r, v[str(few)], v[str(many)]) for r, v in report.metrics["frames"]["per_run"].items()],
            folder / "frames.png",
            labels=(f"{few} frames", f"{many} frames"),
            title="4. Long clips (8 states), greedy",
            ylabel="accuracy %",
        ),
    }
