"""What the two training stages (tasks/sft.py, tasks/rl.py) share: their checkpoint folder (curves and window means:
videor1/curves.py)."""

from __future__ import annotations

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
