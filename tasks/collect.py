"""DVC stage `collect`: rows from their sources -> data/collected.parquet, data/quarantine.jsonl, metrics."""

from __future__ import annotations

import sys
from pathlib import Path

from videor1.data.balance import SourceRule
from videor1.data.collect import CollectConfig, MediaRules, RowSource, collect
from videor1.io import atomic_path, write_json, write_jsonl

from .params import set_threads, stage_params

OUT_TABLE = Path("data/collected.parquet")
OUT_QUARANTINE = Path("data/quarantine.jsonl")
OUT_METRICS = Path("metrics/collect.json")


def config(p: dict) -> CollectConfig:
    inputs = [RowSource(rows=i["rows"], media_root=i["media_root"]) for i in p["inputs"]]
    for source in inputs:  # fail before any work, naming what is missing
        for what, path in (("row file", source.rows), ("media root", source.media_root)):
            if not Path(path).exists():
                raise FileNotFoundError(f"collect: {what} {path} does not exist (set {what} in params.yaml)")
    return CollectConfig(
        inputs=inputs,
        media=MediaRules(**p["media"]),
        sources=[SourceRule(s["pattern"], s.get("weight", 1.0), s.get("cap")) for s in p.get("sources") or []],
        default_weight=p.get("default_weight", 1.0),
        seed=p["seed"],
        workers=p.get("workers", 1),
        probe_cache=p.get("probe_cache"),
    )


def main() -> None:
    p = stage_params("collect")
    set_threads(1)
    try:
        result = collect(config(p))
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"collect failed: {err}")
    with atomic_path(OUT_TABLE) as tmp:
        result.table.write_parquet(tmp)
    write_jsonl(OUT_QUARANTINE, result.quarantine)
    write_json(OUT_METRICS, result.metrics)
    m = result.metrics
    print(
        f"collected {m['rows']} rows, quarantined {m['quarantined']} {m['quarantined_by_step']}, "
        f"media probed {result.run['media_probed_this_run']} / cached {result.run['media_from_cache']}"
    )


if __name__ == "__main__":
    main()
