"""A training run's per-step records as a curve: the CSV DVC plots, and the means of its first and last windows."""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from pathlib import Path

from .io import write_text


def write_curve(path: Path, records: Sequence[dict], fields: Sequence[str]) -> None:
    """One CSV row per record, the given columns only (DVC plots)."""
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(fields), extrasaction="ignore")
    writer.writeheader()
    writer.writerows(records)
    write_text(path, buf.getvalue())


def window_mean(values: Sequence[float | None], n: int, last: bool, digits: int | None = None) -> float | None:
    """Mean of the known values among the first (or last) ``n``; None when there are none."""
    known = [v for v in (values[-n:] if last else values[:n]) if v is not None]
    if not known:
        return None
    mean = sum(known) / len(known)
    return mean if digits is None else round(mean, digits)
