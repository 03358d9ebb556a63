"""Benchmark: the collect stage core (videor1.data.collect.collect) on a Video-R1-260k-sized row file.

It generates a small synthetic dataset (videor1.data.synth), hard-links its
media under new names into a pool of ~20,000 distinct files (44 % videos, the
116k/263k video share of Video-R1-260k), and writes 263,071 rows that copy the
generated rows (unique problem_id, path pointing into the pool; rows share
media files as in the real data). Then it times:

* ``json.load`` of the row file alone (a floor for any collect run);
* run 1, cold: empty probe cache, every pool file is probed (2 workers);
* runs 2 and 3, warm: the probe cache is present, nothing is probed.

The target is a warm run under 10 s on 2 cores. Temporary data lives in a
temporary directory; results go to ``bench/results/collect.json`` and ``collect.md``.

Run from the repository root:

    python bench/bench_collect.py [--rows 263071] [--pool 20000] [--warm-runs 2]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

import polars as pl
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _env import code_version  # noqa: E402  (bench/ is on sys.path)
from _env import machine_info as common_machine_info

from videor1.data.balance import SourceRule  # noqa: E402
from videor1.data.collect import CollectConfig, MediaRules, RowSource, collect  # noqa: E402
from videor1.data.synth import SynthConfig, generate  # noqa: E402

RESULTS = REPO / "bench" / "results"
VIDEO_SHARE = 116_248 / 263_071  # Video-R1-260k
TARGET_WARM_S = 10.0
EXT = {"video": "mp4", "image": "png"}
POOL_DIR = {"video": "videos/bench", "image": "images/bench"}


def make_templates(root: Path) -> dict[str, list[dict]]:
    """Generate the small real dataset; return its training rows by data_type."""
    generate(root, SynthConfig(train_video_rows=100, train_image_rows=100, eval_rows_per_benchmark=2))
    rows = json.loads((root / "train.json").read_text(encoding="utf-8"))
    return {kind: [r for r in rows if r["data_type"] == kind] for kind in EXT}


def build_pool(root: Path, templates: dict[str, list[dict]], pool: int) -> dict[str, list[str]]:
    """Hard-link template media under new names; pool file i of a kind links to template i % n_templates."""
    sizes = {"video": round(pool * VIDEO_SHARE)}
    sizes["image"] = pool - sizes["video"]
    paths: dict[str, list[str]] = {}
    for kind, size in sizes.items():
        (root / POOL_DIR[kind]).mkdir(parents=True)
        paths[kind] = []
        for i in range(size):
            src = root / templates[kind][i % len(templates[kind])]["path"]
            rel = f"{POOL_DIR[kind]}/{kind[0]}{i}.{EXT[kind]}"
            os.link(src, root / rel)
            paths[kind].append("./" + rel)
    return paths


def build_rows(templates: dict[str, list[dict]], pool: dict[str, list[str]], n_rows: int) -> list[dict]:
    """``n_rows`` copies of template rows, interleaved video/image, each pointing at a pool file of its own template."""
    n_video = round(n_rows * VIDEO_SHARE)
    kinds = ["video"] * n_video + ["image"] * (n_rows - n_video)
    random.Random(0).shuffle(kinds)
    counters = {kind: 0 for kind in EXT}
    rows = []
    for problem_id, kind in enumerate(kinds, 1):
        p = counters[kind] % len(pool[kind])
        counters[kind] += 1
        template = templates[kind][p % len(templates[kind])]
        rows.append({**template, "problem_id": problem_id, "path": pool[kind][p]})
    return rows


def config(rows_file: Path, media_root: Path, cache: Path) -> CollectConfig:
    return CollectConfig(
        inputs=[RowSource(rows=str(rows_file), media_root=str(media_root))],
        media=MediaRules(
            max_frames=8,
            video_min_pixels=4 * 28 * 28,
            video_max_pixels=4 * 28 * 28,
            image_min_pixels=4 * 28 * 28,
            image_max_pixels=9 * 28 * 28,
        ),
        sources=[SourceRule("synth-video/video_size", 0.5)],
        probe_cache=str(cache),
        workers=2,
        seed=0,
    )


def time_json_load(path: Path) -> float:
    start = time.perf_counter()
    with path.open(encoding="utf-8") as fh:
        json.load(fh)
    return time.perf_counter() - start


def time_collect(label: str, cfg: CollectConfig) -> dict:
    start = time.perf_counter()
    result = collect(cfg)
    wall = time.perf_counter() - start
    media = result.metrics["media"]
    run = {
        "run": label,
        "wall_s": wall,
        "kept_rows": result.table.height,
        "quarantined": len(result.quarantine),
        "quarantined_by_step": result.metrics["quarantined_by_step"],
        "distinct_media": media["distinct"],
        "probed_this_run": media["probed_this_run"],
        "from_cache": media["from_cache"],
    }
    print(
        f"{label}: {wall:.2f} s, kept {run['kept_rows']}, quarantined {run['quarantined']}, "
        f"probed {run['probed_this_run']}"
    )
    return run


def machine_info() -> dict:
    return common_machine_info(
        polars=pl.__version__,
    )


def markdown(report: dict) -> str:
    lines = [
        f"Rows: {report['rows']:,} ({report['video_rows']:,} video), distinct media files: {report['pool']:,} "
        f"(hard links to {report['template_media']['video']} generated videos and "
        f"{report['template_media']['image']} images), workers: 2, "
        f"cpus: {report['machine']['cpu_affinity']}.",
        "",
        f"`json.load` of the row file ({report['rows_file_mb']:.0f} MB): {report['json_load_s']:.2f} s",
        "",
        "| run | wall s | kept rows | quarantined | probed this run | from cache |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["runs"]:
        lines.append(
            f"| {r['run']} | {r['wall_s']:.2f} | {r['kept_rows']:,} | {r['quarantined']:,} "
            f"| {r['probed_this_run']:,} | {r['from_cache']:,} |"
        )
    verdict = "yes" if report["warm_under_target"] else "NO"
    lines += ["", f"Warm run under {TARGET_WARM_S:.0f} s: {verdict} (best warm {report['best_warm_s']:.2f} s)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=263_071, help="rows in the generated row file")
    parser.add_argument("--pool", type=int, default=20_000, help="distinct media files the rows point at")
    parser.add_argument("--warm-runs", type=int, default=2, help="timed runs with the probe cache present")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for collect.json and collect.md")
    args = parser.parse_args()
    torch.set_num_threads(1)

    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "synth"
        templates = make_templates(root)
        pool = build_pool(root, templates, args.pool)
        rows = build_rows(templates, pool, args.rows)
        rows_file = Path(tmp) / "rows.json"
        rows_file.write_text(json.dumps(rows), encoding="utf-8")
        del rows

        cfg = config(rows_file, root, Path(tmp) / "probe.parquet")
        json_s = time_json_load(rows_file)
        runs = [time_collect("cold", cfg)]
        runs += [time_collect(f"warm {i}", cfg) for i in range(1, args.warm_runs + 1)]
        rows_file_mb = rows_file.stat().st_size / 1e6

    best_warm = min((r["wall_s"] for r in runs[1:]), default=float("nan"))
    report = {
        "machine": machine_info(),
        "code": code_version(),
        "rows": args.rows,
        "video_rows": round(args.rows * VIDEO_SHARE),
        "pool": args.pool,
        "pool_videos": len(pool["video"]),
        "template_media": {kind: len(t) for kind, t in templates.items()},
        "rows_file_mb": rows_file_mb,
        "json_load_s": json_s,
        "runs": runs,
        "best_warm_s": best_warm,
        "target_warm_s": TARGET_WARM_S,
        "warm_under_target": best_warm < TARGET_WARM_S,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "collect.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    title = f"# Collect stage: {args.rows:,} rows, probe cache\n\n"
    (args.out / "collect.md").write_text(title + table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
