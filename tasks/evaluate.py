"""DVC stage `evaluate@<model>`: one model on the six benchmark files at each frame count, under one protocol.

    python -m tasks.evaluate base      # models/base -> data/eval/base/, metrics/eval_base.json
    python -m tasks.evaluate grpo-1 --model-dir runs/grpo-1/model --results runs/grpo-1/eval \
        --metrics runs/grpo-1/eval.json  # any model directory, outputs where an experiment keeps them

The protocol (``eval.protocol``: reference | paper | spec, docs/eval-protocol.md) fixes the prompt wording,
decoding, pixel and frame rules and MRA; its label goes into the metrics beside every number. Videos are
decoded once for all frame counts into the frame cache, which the other models' stages reuse. Per
(benchmark, frames) the per-row outputs go to data/eval/<model>/<benchmark>@<frames>.jsonl as they are
produced; a killed run resumes without regenerating finished rows. A missing benchmark file is reported as
missing, and the other benchmarks run.

``eval.nproc: N`` runs N engines, one per GPU (``tensor_parallel_size`` GPUs each; on CPU, N processes), as
independent worker processes sharing the (benchmark, frames, batch) work (videor1/eval/parallel.py): each appends
to its own part file, merged into the outputs in row order when they are done, so the outputs equal a
one-process run's row by row, and a kill -9 of any of them resumes with only the missing batches.
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from videor1.data.rows import read_rows
from videor1.distributed import gpu_groups
from videor1.eval import EvalRun, benchmark_key, evaluate_rows, run_fingerprint, summarize
from videor1.eval.parallel import EvalJob, ShardedStore, plan_units, run_pool
from videor1.eval.protocol import EvalProtocol
from videor1.generation import make_backend
from videor1.io import write_json, write_run_record
from videor1.media import FrameCache, MediaError
from videor1.models import check_model_dir, model_signature
from videor1.params import EvalParams

from .params import config, set_threads


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def frame_cache(cfg: EvalParams) -> FrameCache | None:
    c = cfg.frame_cache
    return FrameCache(c.dir, int(c.max_gb * 2**30)) if c is not None and c.dir else None


def warm_frames(
    cache: FrameCache, rows: list[dict], root: Path, protocol: EvalProtocol, frames: list[int], workers: int
) -> int:
    """Decode every video once, at the union of its frame counts' indices, into the cache. Unreadable videos
    are left to the runner, which records their error per row."""
    paths = sorted({root / str(r["path"]) for r in rows if r.get("data_type") == "video" and "path" in r})
    rules = [protocol.rules(f) for f in frames]

    def warm(path: Path) -> None:
        try:
            cache.warm(path, rules)
        except (MediaError, OSError, ValueError):
            pass

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(warm, paths))
    return len(paths)


def benchmark_entry(summary) -> dict:
    """A benchmark's numbers; ``missing`` when none of its rows could be read (its media are not there)."""
    entry = {
        "score": _pct(summary.score),
        "accuracy": _pct(summary.accuracy),
        "mra": _pct(summary.mra),
        "score_failed_as_wrong": _pct(summary.score_failed_as_wrong),
        "rows": summary.rows,
        "scored": summary.scored,
        "failed": len(summary.failed),
        "tasks": {t: _pct(v) for t, v in summary.tasks.items()},
        "failed_rows": summary.failed,
        "unscorable": len(summary.unscorable),
        "unscorable_rows": summary.unscorable,
    }
    if summary.rows and len(summary.failed) == summary.rows:
        entry["missing"] = f"no row's medium could be read (first: {summary.failed[0]['error']})"
    return entry


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tasks.evaluate", description="one model on the eval files")
    ap.add_argument("model", help="its name: models/MODEL unless --model-dir")
    ap.add_argument("--model-dir", type=Path, help="the model directory (default models/MODEL)")
    ap.add_argument("--results", type=Path, help="per-row outputs (default data/eval/MODEL)")
    ap.add_argument("--metrics", type=Path, help="the metrics file (default metrics/eval_MODEL.json)")
    args = ap.parse_args(argv)
    args.model_dir = args.model_dir or Path("models") / args.model
    args.results = args.results or Path("data/eval") / args.model
    args.metrics = args.metrics or Path("metrics") / f"eval_{args.model}.json"
    return args


def worker_devices(cfg: EvalParams) -> list[str] | None:
    """Each worker's CUDA_VISIBLE_DEVICES on GPUs (``tensor_parallel_size`` GPUs each), None on CPU or alone."""
    if cfg.nproc == 1 or not cfg.device.startswith("cuda"):
        return None
    return gpu_groups(cfg.nproc, cfg.tensor_parallel_size)  # enough GPUs: checked with the config


def backend_kwargs(cfg: EvalParams, *, device: str) -> dict:
    return dict(
        batch_size=cfg.batch_size,
        device=device,
        dtype=cfg.dtype,
        tensor_parallel_size=cfg.tensor_parallel_size,
        max_model_len=cfg.max_model_len,
        seed=cfg.seed,
        attn_implementation=cfg.attn_implementation,
    )


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    name = args.model
    cfg = config("eval", model_dir=args.model_dir, name="evaluate")
    devices = worker_devices(cfg)
    set_threads(cfg.threads)
    try:
        model_dir = check_model_dir(args.model_dir)
    except FileNotFoundError as err:
        sys.exit(f"evaluate: {err}")
    root = Path(cfg.benchmarks_dir)
    protocol = cfg.protocol_config()
    files = {b: root / f"eval_{b}.json" for b in cfg.benchmarks}
    missing = {b: f"benchmark file {f} does not exist" for b, f in files.items() if not f.is_file()}
    for bench, reason in missing.items():
        print(f"evaluate: {bench}: {reason}; the other benchmarks run", file=sys.stderr)
    rows_by_bench = {b: read_rows(f) for b, f in files.items() if b not in missing}
    if not rows_by_bench:
        sys.exit(f"evaluate: no benchmark file found under {root} (eval.benchmarks_dir in params.yaml)")
    sampling = protocol.sampling(cfg.seed)
    signature = model_signature(model_dir)
    cache = frame_cache(cfg)
    # N workers: a video is decoded for every frame count by whichever worker needs it first (no serial warm-up)
    warm = tuple(protocol.rules(f) for f in cfg.frames) if cache is not None and cfg.nproc > 1 else ()
    runs = {
        f: EvalRun(
            media_root=root,
            rules=protocol.rules(f),
            sampling=sampling,
            batch_size=cfg.batch_size,
            media_workers=cfg.media_workers,
            wording=protocol.wording,
            frame_cache=cache,
            warm_rules=warm,
        )
        for f in cfg.frames
    }
    stores = {
        (b, f): ShardedStore(args.results / f"{b}@{f}.jsonl", run_fingerprint(runs[f], rows, signature, cfg.backend))
        for b, rows in rows_by_bench.items()
        for f in cfg.frames
    }
    # how this run went (never part of the metrics, which the same inputs reproduce byte for byte)
    run = {"nproc": cfg.nproc, "generated_now": 0, "frame_cache_seconds": 0.0 if cfg.nproc == 1 else None}
    total = len(cfg.frames) * sum(len(r) for r in rows_by_bench.values())
    start = time.perf_counter()
    results: dict[tuple[str, int], list[dict]] = {}
    with tqdm(total=total, desc=f"eval {name}", unit="row", dynamic_ncols=True) as bar:
        if cfg.nproc == 1:
            backend = make_backend(cfg.backend, str(model_dir), **backend_kwargs(cfg, device=cfg.device))
            for bench, rows in rows_by_bench.items():  # one benchmark's videos in the cache at a time suffice
                if cache is not None:
                    t0 = time.perf_counter()
                    warm_frames(cache, rows, root, protocol, cfg.frames, cfg.media_workers)
                    run["frame_cache_seconds"] = round(run["frame_cache_seconds"] + time.perf_counter() - t0, 2)
                for frames in cfg.frames:
                    store = stores[(bench, frames)]
                    store.load(rows)  # parts a killed N-process run left are merged in first
                    results[(bench, frames)], generated = evaluate_rows(
                        rows, backend, runs[frames], store.main, on_progress=bar.update
                    )
                    store.merge(rows)  # rows in row order, as N processes leave them
                    run["generated_now"] += generated
        else:
            results = run_workers(cfg, devices, model_dir, rows_by_bench, runs, stores, run, bar)
    metrics = {"model": name, "protocol": protocol.to_dict(), "frames": {str(f): {} for f in cfg.frames}}
    for (bench, frames), rows_done in results.items():
        summary = summarize(bench, rows_done, task_field=cfg.task_field, mra=protocol.mra)
        metrics["frames"][str(frames)][benchmark_key(bench)] = benchmark_entry(summary)
    for per_bench in metrics["frames"].values():
        for bench, reason in missing.items():
            per_bench[benchmark_key(bench)] = {"score": None, "missing": reason}
        scores = [e["score"] for e in per_bench.values() if e["score"] is not None]
        per_bench["mean"] = round(sum(scores) / len(scores), 2) if scores else None
    seconds = time.perf_counter() - start
    run["seconds"] = round(seconds, 2)
    run["rows_per_second"] = round(run["generated_now"] / seconds, 3) if run["generated_now"] else None
    write_json(args.metrics, metrics)
    write_run_record(f"evaluate@{name}", run)
    for frames, per in metrics["frames"].items():
        print(
            f"{name} @ {frames} frames ({protocol.label}): "
            + ", ".join(f"{b} {e['score']}" for b, e in per.items() if b != "mean")
            + f"; mean {per['mean']}"
        )


def run_workers(
    cfg: EvalParams,
    devices: list[str] | None,
    model_dir: Path,
    rows_by_bench: dict,
    runs: dict,
    stores: dict,
    run: dict,
    bar,
) -> dict:
    """Every missing batch on ``cfg.nproc`` worker processes, then the parts merged into the outputs; exits (after
    the merge) when a worker died, naming it and the rows left for the next run."""
    done = {key: store.load(rows_by_bench[key[0]]) for key, store in stores.items()}
    device = "cuda" if devices is not None else cfg.device  # a worker sees its GPU(s) from cuda:0
    job = EvalJob(
        backend=cfg.backend,
        model_dir=str(model_dir),
        backend_kwargs=backend_kwargs(cfg, device=device),
        rows=rows_by_bench,
        runs=runs,
        outputs={key: str(s.path) for key, s in stores.items()},
        threads=cfg.threads,
        batch_size=cfg.batch_size,
        media_workers=cfg.media_workers,
    )
    units = plan_units(job, done)
    bar.update(sum(len(d) for d in done.values()))

    def on_done(unit, _worker: int) -> None:
        run["generated_now"] += len(unit.write)
        bar.update(len(unit.write))

    try:
        pool = run_pool(job, units, cfg.nproc, devices=devices, on_done=on_done)
    finally:  # whatever happened, what the workers wrote goes into the outputs
        done = {key: store.merge(rows_by_bench[key[0]]) for key, store in stores.items()}
    left = sum(len(rows_by_bench[key[0]]) - len(d) for key, d in done.items())
    for line in pool.failures:
        print(f"evaluate: {line}", file=sys.stderr)
    if pool.failures or left:
        sys.exit(
            f"evaluate: {left} rows not generated ({len(pool.failures)} of {min(cfg.nproc, len(units))} workers "
            "failed); what was written is kept: rerun the stage to generate only the missing rows"
        )
    return {key: [d[r["problem_id"]] for r in rows_by_bench[key[0]]] for key, d in done.items()}


if __name__ == "__main__":
    main(sys.argv[1:])
