"""Reading the table an upstream stage handed over: a clear exit when it is missing, pandera on what is read."""

from __future__ import annotations

import sys
from pathlib import Path

import pandera.polars as pa
import polars as pl


def read_stage_table(stage: str, path: Path, schema: pa.DataFrameSchema, made_by: str) -> pl.DataFrame:
    """``path`` checked against ``schema``; exits naming the stage that writes it when it does not exist."""
    if not path.is_file():
        sys.exit(f"{stage}: {path} does not exist (run `dvc repro {made_by}`)")
    return schema.validate(pl.read_parquet(path))
