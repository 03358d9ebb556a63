"""Reading Video-R1 row files and sorting out rows whose fields have the wrong Python type."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl

from .schema import FIELD_TYPES, OPTIONAL_FIELD_TYPES, POLARS_TYPES


def read_rows(path: str | Path) -> list:
    """Rows of a JSON array (the public files) or JSON Lines file. A missing or unparsable file raises."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"row file {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        rows = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    rows.append({"__unparsable__": f"line {n}: {err.msg}"})
        return rows
    try:
        rows = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"row file {path} is not valid JSON: {err}") from err
    if not isinstance(rows, list):
        raise ValueError(f"row file {path} must hold a JSON array of rows, found {type(rows).__name__}")
    return rows


def type_problems(row) -> list[str]:
    """Why a row's fields do not have the types of spec section 2 (empty list: fine)."""
    if not isinstance(row, dict):
        return [f"row must be a JSON object, got {type(row).__name__}"]
    if "__unparsable__" in row:
        return [f"unparsable JSON ({row['__unparsable__']})"]
    problems = []
    for name, kind in FIELD_TYPES.items():
        if name not in row:
            problems.append(f"missing field '{name}'")
        elif isinstance(row[name], bool) or not isinstance(row[name], kind):
            problems.append(f"field '{name}' must be {kind.__name__}, got {type(row[name]).__name__}")
    for name, kind in OPTIONAL_FIELD_TYPES.items():
        if name in row and not isinstance(row[name], kind):
            problems.append(f"field '{name}' must be {kind.__name__}, got {type(row[name]).__name__}")
    if isinstance(row.get("options"), list) and not all(isinstance(o, str) for o in row["options"]):
        problems.append("field 'options' must be a list of strings")
    return problems


def rows_to_frame(rows: list[dict]) -> pl.DataFrame:
    """A polars table of type-checked rows (fields beyond the format are dropped, 'process' kept if any row has it)."""
    columns = [c for c in POLARS_TYPES if c != "process" or any("process" in r for r in rows)]
    schema = {c: POLARS_TYPES[c] for c in columns}
    return pl.DataFrame({c: [r.get(c) for r in rows] for c in columns}, schema=schema)
