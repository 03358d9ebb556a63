"""DVC stage `filter`: keep the CoT rows that pass every rule -> data/cot_filtered.parquet, metrics/filter.json."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

from videor1.cot import apply_filter
from videor1.data.schema import COT_FILTERED_SCHEMA, COT_SCHEMA
from videor1.io import atomic_path, write_json

from .params import config
from .tables import read_stage_table

IN_TABLE = Path("data/cot.parquet")
OUT_TABLE = Path("data/cot_filtered.parquet")
OUT_METRICS = Path("metrics/filter.json")


def main() -> None:
    cfg = config("filter")
    table = read_stage_table("filter", IN_TABLE, COT_SCHEMA, made_by="cot")
    result = apply_filter(table.to_dicts(), cfg, examples=cfg.examples)
    write_json(OUT_METRICS, result.metrics)
    m = result.metrics
    if not result.kept:  # e.g. an untrained teacher: the metrics say which rule removed what, with examples
        removed = ", ".join(f"{name} {r['removed']}" for name, r in m["rules"].items() if r["removed"])
        sys.exit(
            f"filter: none of {m['rows_in']} CoT rows passed every rule (removed: {removed}); nothing to train on. "
            f"Examples per rule are in {OUT_METRICS}; check the teacher (cot.teacher, cot.model)."
        )
    kept = COT_FILTERED_SCHEMA.validate(
        pl.DataFrame(result.kept, schema={**table.schema, "process": pl.Utf8, "teacher_answer": pl.Utf8})
    )
    with atomic_path(OUT_TABLE) as tmp:
        kept.write_parquet(tmp)
    removed = ", ".join(f"{name} {r['removed']}" for name, r in m["rules"].items())
    print(f"filter: kept {m['kept']} of {m['rows_in']} ({m['kept_share']:.1%}); removed by rule: {removed}")


if __name__ == "__main__":
    main()
