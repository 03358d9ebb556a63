"""A stage's checked config (videor1.params), or an exit in one line naming the file, the key and the reason."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import torch

from videor1.params import PARAMS_FILE, ConfigError, ParamsFile, start_stage


def config(stage: str, *, overrides: Sequence[str] = (), model_dir: str | Path | None = None, name: str | None = None):
    """``stage``'s section of params.yaml, checked before any work: on a bad value the process exits (status 1)
    with ``<name>: <file>: <key>: <reason>`` and no traceback."""
    try:
        return start_stage(stage, PARAMS_FILE, overrides=overrides, model_dir=model_dir)
    except ConfigError as err:
        sys.exit(f"{name or stage}: {err}")


def set_threads(n: int) -> None:
    """Pin torch's thread count: on a shared 2-core machine more threads can be 30x slower (spec section 8)."""
    torch.set_num_threads(max(1, int(n)))


def load_params() -> dict:
    """The whole params file as YAML reads it, its profile checked: the toy report's input until it reads
    ``config("toy_report")`` (videor1.params.ToyReportParams)."""
    try:
        params = ParamsFile.read(PARAMS_FILE)
        params.sections()
    except ConfigError as err:
        sys.exit(f"params: {err}")
    return params.data
