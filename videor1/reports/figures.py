"""Training curves as PNG, drawn offline with matplotlib (no browser, no CDN)."""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt  # noqa: E402

from ..io import atomic_path  # noqa: E402


def read_curve(path: str | Path) -> list[dict]:
    """A DVC plots CSV as rows of floats (empty cells become None)."""
    with Path(path).open(encoding="utf-8") as fh:
        return [{k: (float(v) if v not in ("", None) else None) for k, v in row.items()} for row in csv.DictReader(fh)]


def smooth(values: list[float | None], window: int) -> list[float | None]:
    """Trailing moving average over the known values (curves of a few dozen noisy RL steps need it)."""
    out = []
    for i in range(len(values)):
        part = [v for v in values[max(0, i - window + 1) : i + 1] if v is not None]
        out.append(sum(part) / len(part) if part else None)
    return out


def plot_curves(
    rows: list[dict], x: str, ys: Sequence[str], target: str | Path, *, title: str, smooth_window: int = 1
) -> Path:
    """One PNG with a line per column in ``ys`` (raw, faint; smoothed, solid when smooth_window > 1)."""
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=100)
    xs = [r[x] for r in rows]
    for y in ys:
        values = [r.get(y) for r in rows]
        if smooth_window > 1:
            (line,) = ax.plot(xs, values, alpha=0.25, linewidth=1)
            ax.plot(
                xs,
                smooth(values, smooth_window),
                color=line.get_color(),
                linewidth=2,
                label=f"{y} (mean of {smooth_window})",
            )
        else:
            ax.plot(xs, values, linewidth=2, label=y)
    ax.set_xlabel(x)
    return save_figure(fig, ax, target, title=title, legend_size=8)


def save_figure(fig, ax, target: str | Path, *, title: str, legend_size: int = 8) -> Path:
    """Title, grid, legend, tight layout, then the PNG written atomically; the figure is closed."""
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=legend_size)
    fig.tight_layout()
    with atomic_path(target) as tmp:
        fig.savefig(tmp, format="png")
    plt.close(fig)
    return Path(target)
