"""What the two training stages (tasks/sft.py, tasks/rl.py) share: their checkpoint folder, curves, window means."""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Sequence
from pathlib import Path

from videor1.io import write_text


def prepare_checkpoints(checkpoints: Path, run_id: str, stage: str, also: Sequence[Path] = ()) -> None:
    """Keep ``checkpoints`` (and the folders ``also`` written beside them, e.g. TensorBoard's) only when they belong to
    this run's configuration (``run_id``, a fingerprint); a changed configuration starts over."""
    marker = checkpoints / "run.json"
    if checkpoints.exists() and (not marker.exists() or marker.read_text().strip() != run_id):
        print(f"{stage}: {checkpoints} holds another configuration's checkpoints; starting over")
        for folder in (checkpoints, *also):
            shutil.rmtree(folder, ignore_errors=True)
    checkpoints.mkdir(parents=True, exist_ok=True)
    write_text(marker, run_id + "\n")


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
