"""Benchmark: CoT generation throughput (videor1.cot.generate_cot) with the transformers teacher on the tiny model.

It runs the ``cot`` stage's core, ``generate_cot`` with a ``ModelTeacher`` over a
``TransformersBackend`` on ``models/base``, on an evenly spaced subsample of
``data/collected.parquet`` (video and image rows in the table's proportion), with
the paper's teacher sampling (temperature 1.0, top_p 0.95), ``--max-new-tokens``
new tokens (64 by default instead of the stage's 512, to keep the run short), and
the tiny profile's ``cot`` media rules and prompt limit (params.yaml ``tiny.cot``).
Configurations:

* baseline - batch 1, one media worker: one row at a time;
* batch B  - B rows per ``teacher.complete`` / ``generate`` call (left padding)
             and per fsynced store append, two media workers decoding that
             batch's media (B = 16 is the stage default).

Every configuration runs ``--repeats`` times (configurations interleaved, each
run with a fresh temporary ResultStore, so nothing is reused), after one untimed
warm-up. Wall time covers media decoding, prompt tokenization, generation and the
store's fsynced appends. Reported: best and median seconds, rows/s and generated
tokens/s (sum of the records' ``meta["completion_tokens"]`` / seconds) of the
best run, the speed-up against the baseline, and whether repeats of a
configuration wrote identical completions (sampling is seeded per batch, so
different batch sizes sample differently; identical repeats are expected).

For reference it also times the scripted teacher (the tiny profile's default,
no model) through the same ``generate_cot`` on all collected rows.

Results go to ``bench/results/cot.json`` and ``cot.md``. Run from the
repository root (``dvc repro filter`` first if ``data/collected.parquet`` or the
model is missing):

    python bench/bench_cot.py [--rows 128] [--max-new-tokens 64] [--batch-sizes 4,16,32] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl
import torch
import transformers
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _env import code_version  # noqa: E402  (bench/ is on sys.path)
from _env import machine_info as common_machine_info

from videor1.cot import ModelTeacher, ScriptedTeacher, generate_cot  # noqa: E402
from videor1.generation import SamplingConfig, TransformersBackend  # noqa: E402
from videor1.media import MediaRules  # noqa: E402
from videor1.models import load_model, load_processor, model_signature  # noqa: E402
from videor1.store import ResultStore  # noqa: E402

RESULTS = REPO / "bench" / "results"
MODEL = REPO / "models" / "base"
ROWS_FILE = REPO / "data" / "collected.parquet"
PARAMS = REPO / "params.yaml"
WARMUP_ROWS = 8


@dataclass(frozen=True)
class Config:
    """One way of running the teacher: rows per batch and media decoding threads."""

    name: str
    batch_size: int
    media_workers: int


def tiny_cot_params() -> dict:
    return yaml.safe_load(PARAMS.read_text())["tiny"]["cot"]


def load_rows() -> list[dict]:
    if not ROWS_FILE.is_file():
        sys.exit(f"{ROWS_FILE} is missing: run `dvc repro filter` first")
    rows = pl.read_parquet(ROWS_FILE).to_dicts()
    for r in rows:  # relative media roots are relative to the repository root, where the stage runs
        if not Path(r["media_root"]).is_absolute():
            r["media_root"] = str(REPO / r["media_root"])
    return rows


def subsample(rows: list[dict], n: int) -> list[dict]:
    """``n`` evenly spaced rows, so video and image rows (and problem types) come in the table's proportion."""
    n = min(n, len(rows))
    return [rows[i * len(rows) // n] for i in range(n)]


def run_teacher(rows: list[dict], teacher, batch_size: int) -> tuple[float, list[dict]]:
    """Wall seconds and records of one ``generate_cot`` run into a fresh temporary store."""
    with tempfile.TemporaryDirectory() as tmp:
        store = ResultStore(Path(tmp) / "completions.jsonl", fingerprint="bench", key="row_key")
        start = time.perf_counter()
        records, generated = generate_cot(rows, teacher, store, batch_size=batch_size)
        wall = time.perf_counter() - start
    assert generated == len(rows), "a fresh store must not hold any row"
    return wall, records


def make_teacher(cfg: Config, model, processor, p: dict, sampling: SamplingConfig, signature: dict) -> ModelTeacher:
    backend = TransformersBackend(model, processor, batch_size=cfg.batch_size)
    return ModelTeacher(
        backend,
        processor,
        sampling=sampling,
        rules=MediaRules(**p["media"]),
        max_prompt_tokens=p["max_model_len"] - sampling.max_new_tokens,
        model_signature=signature,
        backend_name="transformers",
        media_workers=cfg.media_workers,
    )


def completions(records: list[dict]) -> list[str | None]:
    return [r["completion"] for r in records]


def summarize(cfg: Config, walls: list[float], runs: list[list[dict]]) -> dict:
    """Numbers of one configuration; rates are those of its best run."""
    first = runs[0]
    best = min(walls)
    tokens = sum(r["meta"].get("completion_tokens", 0) for r in first)
    return {
        "config": cfg.name,
        "batch_size": cfg.batch_size,
        "media_workers": cfg.media_workers,
        "rows": len(first),
        "errors": sum(r["completion"] is None for r in first),
        "wall_s": walls,
        "best_s": best,
        "median_s": statistics.median(walls),
        "rows_per_s": len(first) / best,
        "completion_tokens": tokens,
        "finished": sum(bool(r["meta"].get("finished")) for r in first),
        "tokens_per_s": tokens / best,
        "distinct_completions": len(set(completions(first))),
        "repeats_identical": all(completions(run) == completions(first) for run in runs[1:]),
    }


def machine_info() -> dict:
    return common_machine_info(transformers=transformers.__version__, polars=pl.__version__)


def markdown(report: dict) -> str:
    base = report["results"][0]
    mix = ", ".join(f"{n} {k}" for k, n in report["rows_by_data_type"].items())
    s = report["sampling"]
    lines = [
        f"Rows: {base['rows']} of data/collected.parquet ({mix}), tiny cot media rules (max {report['media']['max_frames']} "
        f"frames), temperature {s['temperature']} / top_p {s['top_p']}, max_new_tokens {s['max_new_tokens']}, "
        f"torch threads: {report['threads']}, cpus: {report['machine']['cpu_affinity']}. Best of {report['repeats']} "
        "runs (median beside it); speed-up is best vs the baseline's best.",
        "",
        "| config | batch | media workers | best s | median s | rows/s | tokens/s | speed-up | tokens/row "
        "| finished | errors | repeats identical |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['config']} | {r['batch_size']} | {r['media_workers']} | {r['best_s']:.2f} | {r['median_s']:.2f} "
            f"| {r['rows_per_s']:.2f} | {r['tokens_per_s']:.0f} | {base['best_s'] / r['best_s']:.2f}x "
            f"| {r['completion_tokens'] / r['rows']:.1f} | {r['finished']}/{r['rows']} | {r['errors']} "
            f"| {'yes' if r['repeats_identical'] else 'no'} |"
        )
    sc = report["scripted"]
    lines += [
        "",
        f"Scripted teacher (reference, no model): {sc['rows']} rows, batch {sc['batch_size']}, best "
        f"{sc['best_s']:.3f} s (median {sc['median_s']:.3f} s) = {sc['rows_per_s']:.0f} rows/s, "
        f"{sc['errors']} errors.",
    ]
    return "\n".join(lines + ["", interpretation(report)]) + "\n"


def interpretation(report: dict) -> str:
    """A few sentences on what the table shows, written from its numbers."""
    base, *batched = report["results"]
    top = max(batched, key=lambda r: r["rows_per_s"], default=base)
    default = next((r for r in batched if r["batch_size"] == 16), top)
    text = [
        f"Batching is where CoT throughput comes from: {default['config']} (the stage default) runs "
        f"{base['best_s'] / default['best_s']:.1f}x the one-row-at-a-time baseline "
        f"({default['rows_per_s']:.1f} vs {base['rows_per_s']:.1f} rows/s)"
        + (
            f", and the fastest configuration, {top['config']}, {base['best_s'] / top['best_s']:.1f}x."
            if top is not default
            else ", the fastest configuration measured."
        )
    ]
    if top is not default:
        gain = default["best_s"] / top["best_s"]
        text.append(f"Going from batch 16 to {top['config']} adds {'only ' if gain < 1.15 else ''}{gain:.2f}x.")
    elif any(r["batch_size"] > 16 for r in batched):
        text.append("Larger batches than 16 do not help here.")
    finished = sum(r["finished"] for r in report["results"])
    total = sum(r["rows"] for r in report["results"])
    if finished < total / 2:
        text.append(
            f"With temperature 1.0 the random tiny model seldom samples an end token ({finished} of {total} "
            f"completions over all configurations end before max_new_tokens = "
            f"{report['sampling']['max_new_tokens']}), so nearly every row costs the full token budget; the "
            "stage's 512 tokens would cost several times more per row."
        )
    spread = max(max(r["wall_s"]) / min(r["wall_s"]) for r in report["results"])
    if spread > 1.1:
        text.append(
            f"Runs of one configuration differ by up to {100 * (spread - 1):.0f} % (a shared machine), "
            "so read the ratios to about that precision."
        )
    if not all(r["repeats_identical"] for r in report["results"]):
        text.append("Some repeats of a configuration wrote different completions despite the per-batch seed.")
    sc = report["scripted"]
    text.append(
        f"The scripted teacher is {sc['rows_per_s'] / top['rows_per_s']:.0f}x faster than the best model "
        f"configuration ({sc['rows_per_s']:.0f} rows/s): with it, the tiny profile's default CoT stage spends "
        f"{sc['best_s']:.1f} s on all {sc['rows']} rows."
    )
    return " ".join(text)


def time_scripted(rows: list[dict], p: dict, repeats: int) -> dict:
    s = p["scripted"]
    teacher = ScriptedTeacher(
        REPO / s["facts"], split=s.get("split", "train"), seed=s.get("seed", 0), spoil=s.get("spoil")
    )
    run_teacher(rows[:WARMUP_ROWS], teacher, p["batch_size"])
    walls, records = [], []
    for _ in range(repeats):
        wall, records = run_teacher(rows, teacher, p["batch_size"])
        walls.append(wall)
    best = min(walls)
    return {
        "rows": len(rows),
        "batch_size": p["batch_size"],
        "wall_s": walls,
        "best_s": best,
        "median_s": statistics.median(walls),
        "rows_per_s": len(rows) / best,
        "errors": sum(r["completion"] is None for r in records),
        "spoiled": dict(Counter(str(r["meta"].get("spoil")) for r in records)),
    }


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=128, help="rows to generate for, evenly spaced over the table")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--batch-sizes", default="4,16,32", help="comma-separated batch sizes beside the baseline")
    parser.add_argument("--media-workers", type=int, default=2, help="media workers of the batched configurations")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per configuration")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for cot.json and cot.md")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    p = tiny_cot_params()
    configs = [Config("baseline", 1, 1)] + [
        Config(f"batch {b}", b, args.media_workers) for b in map(int, args.batch_sizes.split(","))
    ]
    all_rows = load_rows()
    rows = subsample(all_rows, args.rows)
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=args.max_new_tokens, seed=p.get("seed", 0))
    model, processor = load_model(MODEL), load_processor(MODEL)
    signature = model_signature(MODEL)
    teachers = {c.name: make_teacher(c, model, processor, p, sampling, signature) for c in configs}

    run_teacher(rows[:WARMUP_ROWS], teachers[configs[-1].name], configs[-1].batch_size)  # warm-up, untimed

    walls = {c.name: [] for c in configs}
    runs = {c.name: [] for c in configs}
    for i in range(1, args.repeats + 1):  # interleaved, so drift in machine load spreads over all configurations
        for cfg in configs:
            wall, records = run_teacher(rows, teachers[cfg.name], cfg.batch_size)
            walls[cfg.name].append(wall)
            runs[cfg.name].append(records)
            print(f"repeat {i} {cfg.name}: {wall:.2f} s, {len(rows) / wall:.2f} rows/s", flush=True)

    scripted = time_scripted(all_rows, p, args.repeats)
    print(f"scripted teacher: {scripted['best_s']:.3f} s, {scripted['rows_per_s']:.0f} rows/s", flush=True)

    report = {
        "machine": machine_info(),
        "code": code_version(),
        "model": str(MODEL.relative_to(REPO)),
        "rows_by_data_type": dict(sorted(Counter(r["data_type"] for r in rows).items())),
        "rows_by_problem_type": dict(sorted(Counter(r["problem_type"] for r in rows).items())),
        "media": p["media"],
        "max_prompt_tokens": p["max_model_len"] - args.max_new_tokens,
        "sampling": asdict(sampling),
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup_rows": WARMUP_ROWS,
        "results": [summarize(c, walls[c.name], runs[c.name]) for c in configs],
        "scripted": scripted,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "cot.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    title = f"# CoT generation throughput: transformers teacher, tiny model, {len(rows)} rows, batch sizes\n\n"
    (args.out / "cot.md").write_text(title + table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
