"""Configuration files shipped with the package (DeepSpeed ZeRO-2 and ZeRO-3)."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

DEEPSPEED_CONFIGS = ("zero2", "zero3")


def deepspeed_config(name: str | None) -> Path | None:
    """Path of the shipped DeepSpeed config ``zero2`` or ``zero3`` (None: no DeepSpeed), or of a JSON file given by path."""
    if name in (None, "", "none"):
        return None
    if name in DEEPSPEED_CONFIGS:
        return Path(str(resources.files(__package__) / "deepspeed" / f"{name}.json"))
    path = Path(name)
    if path.suffix == ".json" and path.is_file():
        json.loads(path.read_text())  # fail now, naming the file, rather than inside DeepSpeed
        return path
    raise ValueError(f"deepspeed must be one of {DEEPSPEED_CONFIGS}, null, or a JSON file; got {name!r}")
