"""DVC stage `collect`: rows from their sources -> data/collected.parquet, data/quarantine.jsonl, metrics."""

from __future__ import annotations

import sys
from pathlib import Path

from videor1.data.collect import collect
from videor1.io import atomic_path, write_json, write_jsonl, write_run_record

from .params import config, set_threads

OUT_TABLE = Path("data/collected.parquet")
OUT_QUARANTINE = Path("data/quarantine.jsonl")
OUT_METRICS = Path("metrics/collect.json")


def main() -> None:
    cfg = config("collect")
    set_threads(1)
    for source in cfg.inputs:  # fail before any work, naming what is missing
        for what, path in (("row file", source.rows), ("media root", source.media_root)):
            if not Path(path).exists():
                sys.exit(f"collect: {what} {path} does not exist (set {what} in params.yaml)")
    try:
        result = collect(cfg)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"collect failed: {err}")
    with atomic_path(OUT_TABLE) as tmp:
        result.table.write_parquet(tmp)
    write_jsonl(OUT_QUARANTINE, result.quarantine)
    write_json(OUT_METRICS, result.metrics)
    write_run_record("collect", result.run)  # the probe cache's hits: how this run went, not what it made
    m = result.metrics
    print(
        f"collected {m['rows']} rows, quarantined {m['quarantined']} {m['quarantined_by_step']}, "
        f"media probed {result.run['media_probed_this_run']} / cached {result.run['media_from_cache']}"
    )


if __name__ == "__main__":
    main()
