"""Benchmark: eval throughput of the tiny model (videor1.eval.evaluate_rows) at different batch sizes.

It runs the ``evaluate`` stage's core, ``evaluate_rows`` with a
``TransformersBackend`` over ``models/base``, on the rows of the six synthetic
benchmark files ``data/synth/eval_<benchmark>.json`` (one call per benchmark
file, as the stage does), at 8 frames, temperature 0.01 / top_p 0.001 and 96
new tokens (the tiny ``eval`` settings of params.yaml). Configurations:

* baseline - batch 1, one media worker: one row at a time, like the public
             eval script's loop;
* batch B  - B rows per ``generate`` call (left padding), two media workers
             decoding the next batch's videos while this one generates
             (B = 16 is the tiny profile's default).

Every configuration runs ``--repeats`` times (configurations interleaved, each
run with a fresh temporary ResultStore, so nothing is reused), after one
untimed warm-up. Wall time covers media decoding, generation and the store's
fsynced appends. Reported: best and median seconds, samples/s and generated
tokens/s (sum of ``completion_tokens`` / seconds) of the best run, the speed-up
against the baseline, and how many outputs equal the baseline's row for row
(batching with left padding changes the arithmetic, so near-greedy outputs may
differ). Results go to ``bench/results/eval.json`` and ``eval.md``.

Run from the repository root (``dvc repro evaluate@base`` first if the model or
the benchmark files are missing):

    python bench/bench_eval.py [--rows 288] [--frames 8] [--batch-sizes 4,16,32] [--repeats 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import transformers

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _env import code_version  # noqa: E402  (bench/ is on sys.path)
from _env import machine_info as common_machine_info

from videor1.eval import EvalRun, ResultStore, evaluate_rows  # noqa: E402
from videor1.generation import SamplingConfig, TransformersBackend  # noqa: E402
from videor1.media import MediaRules  # noqa: E402
from videor1.models import load_model, load_processor  # noqa: E402

RESULTS = REPO / "bench" / "results"
MODEL = REPO / "models" / "base"
BENCH_DIR = REPO / "data" / "synth"
BENCHMARKS = ("mvbench", "tempcompass", "videomme", "videommmu", "vsibench", "mmvu")
WARMUP_ROWS = 4


@dataclass(frozen=True)
class Config:
    """One way of running the eval: rows per generate call and media decoding threads."""

    name: str
    batch_size: int
    media_workers: int


def media_rules(frames: int) -> MediaRules:
    """The tiny profile's eval media settings (params.yaml ``tiny.eval.media``) at ``frames`` frames."""
    return MediaRules(
        fps=2.0,
        min_frames=4,
        max_frames=frames,
        video_min_pixels=3136,
        video_max_pixels=3136,
        image_min_pixels=3136,
        image_max_pixels=7056,
    )


def load_rows(n_rows: int) -> dict[str, list[dict]]:
    """Up to ``n_rows`` rows by benchmark, taken from the six files in turn (the first rows of each)."""
    by_bench = {}
    for bench in BENCHMARKS:
        path = BENCH_DIR / f"eval_{bench}.json"
        if not path.is_file():
            sys.exit(f"{path} is missing: run `dvc repro evaluate@base` first")
        by_bench[bench] = json.loads(path.read_text(encoding="utf-8"))
    per_bench = [0] * len(BENCHMARKS)
    for i in range(min(n_rows, sum(len(r) for r in by_bench.values()))):
        k = i % len(BENCHMARKS)
        while per_bench[k] >= len(by_bench[BENCHMARKS[k]]):  # that file is used up: take from the next one
            k = (k + 1) % len(BENCHMARKS)
        per_bench[k] += 1
    return {b: rows[:n] for (b, rows), n in zip(by_bench.items(), per_bench) if n}


def evaluate_all(
    rows: dict[str, list[dict]], model, processor, cfg: Config, rules: MediaRules, sampling: SamplingConfig
) -> tuple[float, list[dict]]:
    """Wall seconds and per-row results of one run over every benchmark, each with a fresh result store."""
    backend = TransformersBackend(model, processor, batch_size=cfg.batch_size)
    run = EvalRun(
        media_root=BENCH_DIR, rules=rules, sampling=sampling, batch_size=cfg.batch_size, media_workers=cfg.media_workers
    )
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        for bench, bench_rows in rows.items():
            store = ResultStore(Path(tmp) / f"{bench}.jsonl", fingerprint=bench)
            done, _ = evaluate_rows(bench_rows, backend, run, store)
            results += done
        wall = time.perf_counter() - start
    return wall, results


def outputs(results: list[dict]) -> list[str | None]:
    return [r["output"] for r in results]


def summarize(cfg: Config, walls: list[float], runs: list[list[dict]], baseline: list[str | None] | None) -> dict:
    """Numbers of one configuration; rates are those of its best run."""
    first = runs[0]
    best = min(walls)
    tokens = sum(r.get("completion_tokens", 0) for r in first)
    reference = baseline if baseline is not None else outputs(first)
    return {
        "config": cfg.name,
        "batch_size": cfg.batch_size,
        "media_workers": cfg.media_workers,
        "rows": len(first),
        "errors": sum(r["output"] is None for r in first),
        "wall_s": walls,
        "best_s": best,
        "median_s": statistics.median(walls),
        "samples_per_s": len(first) / best,
        "completion_tokens": tokens,
        "finished": sum(bool(r.get("finished")) for r in first),
        "tokens_per_s": tokens / best,
        "distinct_outputs": len(set(outputs(first))),
        "same_as_baseline": sum(a == b for a, b in zip(outputs(first), reference)),
        "repeats_identical": all(outputs(run) == outputs(first) for run in runs[1:]),
    }


def machine_info() -> dict:
    return common_machine_info(transformers=transformers.__version__)


def markdown(report: dict) -> str:
    base = report["results"][0]
    lines = [
        f"Rows: {base['rows']} (six synthetic benchmark files), {report['frames']} frames, "
        f"temperature {report['sampling']['temperature']} / top_p {report['sampling']['top_p']}, "
        f"max_new_tokens {report['sampling']['max_new_tokens']}, torch threads: {report['threads']}, "
        f"cpus: {report['machine']['cpu_affinity']}. Best of {report['repeats']} runs (median beside it); "
        "speed-up is best vs the baseline's best.",
        "",
        "| config | batch | media workers | best s | median s | samples/s | tokens/s | speed-up "
        "| outputs = baseline | distinct outputs | repeats identical |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['config']} | {r['batch_size']} | {r['media_workers']} | {r['best_s']:.2f} | {r['median_s']:.2f} "
            f"| {r['samples_per_s']:.1f} | {r['tokens_per_s']:.0f} | {base['best_s'] / r['best_s']:.2f}x "
            f"| {r['same_as_baseline']}/{r['rows']} | {r['distinct_outputs']} | {'yes' if r['repeats_identical'] else 'no'} |"
        )
    return "\n".join(lines + ["", interpretation(report)]) + "\n"


def interpretation(report: dict) -> str:
    """A few sentences on what the table shows, written from its numbers."""
    base, *batched = report["results"]
    top = max(batched, key=lambda r: r["samples_per_s"], default=base)
    default = next((r for r in batched if r["batch_size"] == 16), top)
    text = [
        f"Batching is where eval throughput comes from: {default['config']} runs "
        f"{base['best_s'] / default['best_s']:.1f}x the one-row-at-a-time baseline "
        f"({default['samples_per_s']:.1f} vs {base['samples_per_s']:.1f} samples/s), "
        f"and the fastest configuration, {top['config']}, {base['best_s'] / top['best_s']:.1f}x."
    ]
    if top is not default:
        gain = default["best_s"] / top["best_s"]
        text.append(
            f"Going from batch 16 to {top['config']} adds {'only ' if gain < 1.15 else ''}{gain:.2f}x; "
            "each benchmark file is its own call (at most "
            f"{max(report['rows_by_benchmark'].values())} rows here), so large batches run part-full."
        )
    spread = max(max(r["wall_s"]) / min(r["wall_s"]) for r in report["results"])
    if spread > 1.1:
        text.append(
            f"Runs of one configuration differ by up to {100 * (spread - 1):.0f} % (a shared machine), "
            "so read the ratios to about that precision."
        )
    same = all(r["same_as_baseline"] == r["rows"] for r in batched)
    if base["distinct_outputs"] <= 2:
        text.append(
            f"{'Every' if same else 'Not every'} batched output equals the baseline's, but the random tiny "
            f"model writes only {base['distinct_outputs']} distinct output(s) over all rows, so this says "
            "little about whether left padding changes a real model's near-greedy outputs."
        )
    else:
        counts = ", ".join(f"{r['config']} {r['same_as_baseline']}/{r['rows']}" for r in batched)
        text.append(
            f"Outputs identical to the baseline's: {counts}; differences come from left padding and "
            "batched arithmetic changing near-tied logits."
        )
    return " ".join(text)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=288, help="rows to evaluate, taken from the six files in turn")
    parser.add_argument("--frames", type=int, default=8, help="max frames per video")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--batch-sizes", default="4,16,32", help="comma-separated batch sizes beside the baseline")
    parser.add_argument("--media-workers", type=int, default=2, help="media workers of the batched configurations")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per configuration")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for eval.json and eval.md")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    configs = [Config("baseline", 1, 1)] + [
        Config(f"batch {b}", b, args.media_workers) for b in map(int, args.batch_sizes.split(","))
    ]
    rows = load_rows(args.rows)
    rules = media_rules(args.frames)
    sampling = SamplingConfig(temperature=0.01, top_p=0.001, max_new_tokens=args.max_new_tokens, seed=0)
    model, processor = load_model(MODEL), load_processor(MODEL)

    warmup = {b: r[:WARMUP_ROWS] for b, r in list(rows.items())[:1]}
    evaluate_all(warmup, model, processor, configs[-1], rules, sampling)

    walls = {c.name: [] for c in configs}
    runs = {c.name: [] for c in configs}
    for i in range(1, args.repeats + 1):  # interleaved, so drift in machine load spreads over all configurations
        for cfg in configs:
            wall, results = evaluate_all(rows, model, processor, cfg, rules, sampling)
            walls[cfg.name].append(wall)
            runs[cfg.name].append(results)
            print(f"repeat {i} {cfg.name}: {wall:.2f} s, {len(results) / wall:.1f} samples/s", flush=True)

    baseline = outputs(runs[configs[0].name][0])
    report = {
        "machine": machine_info(),
        "code": code_version(),
        "model": str(MODEL.relative_to(REPO)),
        "rows_by_benchmark": {b: len(r) for b, r in rows.items()},
        "frames": args.frames,
        "media": asdict(rules),
        "sampling": asdict(sampling),
        "threads": args.threads,
        "repeats": args.repeats,
        "warmup_rows": WARMUP_ROWS,
        "results": [summarize(c, walls[c.name], runs[c.name], None if c is configs[0] else baseline) for c in configs],
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    title = f"# Eval throughput: tiny model, {sum(report['rows_by_benchmark'].values())} rows, batch sizes\n\n"
    (args.out / "eval.md").write_text(title + table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
