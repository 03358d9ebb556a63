"""Benchmark: the collect stage's core (``videor1.data.collect.collect``) on a Video-R1-260k-sized row file.

The pipeline's synthetic training rows (``data/synth``) and their media are the templates: their files are
hard-linked under new names into a pool of ``--pool`` distinct files (44 % videos, Video-R1-260k's 116k/263k video
share), and ``--rows`` rows copy the template rows, each with a problem_id of its own and a path into the pool
(rows share media files, as in the real data). Timed, interleaved: a cold run (the probe cache deleted first, every
pool file probed on 2 workers) and a warm one (the probe cache present, nothing probed), after a warm-up; and
``json.load`` of the row file alone, a floor for any collect run. The target: a warm run under 10 s on 2 cores.

    python -m bench.collect [--rows 263071] [--pool 20000] [--repeats 2]
"""

from __future__ import annotations

import json
import os
import random
import tempfile
import time
from pathlib import Path

import polars as pl

from bench import harness
from videor1.data.balance import SourceRule
from videor1.data.collect import CollectConfig, MediaRules, RowSource, collect

VIDEO_SHARE = 116_248 / 263_071  # Video-R1-260k
TARGET_WARM_S = 10.0


def row_file(synth: Path, work: Path, n_rows: int, pool: int) -> Path:
    """Pool files hard-linked to the template media, and ``n_rows`` rows pointing into the pool."""
    templates = json.loads((synth / "train.json").read_text())
    rng, rows, paths = random.Random(0), [], {}
    for kind in ("video", "image"):
        of_kind = [r for r in templates if r["data_type"] == kind]
        size = round(pool * VIDEO_SHARE) if kind == "video" else pool - round(pool * VIDEO_SHARE)
        (work / kind).mkdir(parents=True)
        paths[kind] = []
        for i in range(size):
            template = of_kind[i % len(of_kind)]
            rel = f"{kind}/{i}{Path(template['path']).suffix}"
            os.link(synth / template["path"], work / rel)
            paths[kind].append((template, "./" + rel))
    kinds = ["video"] * round(n_rows * VIDEO_SHARE) + ["image"] * (n_rows - round(n_rows * VIDEO_SHARE))
    rng.shuffle(kinds)
    for problem_id, kind in enumerate(kinds, 1):
        template, path = paths[kind][rng.randrange(len(paths[kind]))]
        rows.append({**template, "problem_id": problem_id, "path": path})
    (work / "rows.json").write_text(json.dumps(rows), encoding="utf-8")
    return work / "rows.json"


def main() -> None:
    ap = harness.arguments(__doc__)
    ap.add_argument("--rows", type=int, default=263_071)
    ap.add_argument("--pool", type=int, default=20_000, help="distinct media files the rows point at")
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    root, p = harness.project("synth"), harness.params()["collect"]
    with tempfile.TemporaryDirectory(dir=root) as tmp:  # beside the media: hard links stay on one file system
        rows = row_file(root / "data" / "synth", Path(tmp), args.rows, args.pool)
        cache = Path(tmp) / "probe.parquet"
        cfg = CollectConfig(
            inputs=[RowSource(rows=str(rows), media_root=tmp)],
            media=MediaRules(**p["media"]),
            sources=[SourceRule("synth-video/video_size", 0.5)],  # the balance step at work, no cap on the big set
            probe_cache=str(cache),
            workers=p["workers"],
        )
        start = time.perf_counter()
        json.loads(rows.read_text(encoding="utf-8"))
        json_s = time.perf_counter() - start

        def run() -> dict:
            result = collect(cfg)
            return {"kept rows": result.table.height, "quarantined": len(result.quarantine), **result.run}

        timings = harness.interleave(
            {"cold": run, "warm": run}, args.repeats, before=lambda n: n == "cold" and cache.unlink(missing_ok=True)
        )
        rows_mb = rows.stat().st_size / 1e6
    table = [{"run": name, "median s": t.median, **t.results[0]} for name, t in timings.items()]
    warm = timings["warm"].median
    md = [
        f"# Collect stage: {args.rows:,} rows, {args.pool:,} distinct media files, probe cache",
        "",
        f"Rows copy the pipeline's synthetic training rows; the pool hard-links their media; {p['workers']} workers; "
        f"medians of {args.repeats} interleaved runs after a warm-up. `json.load` of the row file ({rows_mb:.0f} MB) "
        f"alone: {json_s:.2f} s.",
        "",
        *harness.table(table),
        "",
        f"Warm run under {TARGET_WARM_S:.0f} s: {'yes' if warm < TARGET_WARM_S else 'NO'} ({warm:.2f} s).",
    ]
    record = {"config": vars(args), "json_load_s": json_s, "rows_file_mb": rows_mb, "runs": table}
    print(harness.write("collect", record, md, args.out, polars=pl.__version__))


if __name__ == "__main__":
    main()
