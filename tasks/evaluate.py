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
from videor1.eval.parallel import EvalJob, ShardedStore, check_nproc, plan_units, run_pool
from videor1.eval.protocol import EvalProtocol, resolve_protocol
from videor1.generation import make_backend
from videor1.io import write_json
from videor1.media import FrameCache, MediaError
from videor1.models import check_attention, check_model_dir, model_signature

from .params import set_threads, stage_params


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def protocol_of(p: dict) -> EvalProtocol:
    try:
        return resolve_protocol(p.get("protocol", "reference"), p.get("protocol_overrides"))
    except ValueError as err:
        sys.exit(f"evaluate: {err}")


def frame_cache(p: dict) -> FrameCache | None:
    c = p.get("frame_cache") or {}
    return FrameCache(c["dir"], int(c.get("max_gb", 20) * 2**30)) if c.get("dir") else None


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


def checked_nproc(p: dict) -> int:
    """``eval.nproc`` (and the transformers backend's attention), refused in one line before any work."""
    try:
        if p.get("backend") == "transformers":
            check_attention(p.get("attn_implementation", "sdpa"))
        return check_nproc(p.get("nproc", 1))
    except ValueError as err:
        sys.exit(f"evaluate: {err}")


def worker_devices(p: dict, nproc: int) -> list[str] | None:
    """Each worker's CUDA_VISIBLE_DEVICES on GPUs (``tensor_parallel_size`` GPUs each), None on CPU or alone."""
    if nproc == 1 or not str(p.get("device", "cpu")).startswith("cuda"):
        return None
    try:
        return gpu_groups(nproc, int(p.get("tensor_parallel_size", 1)))
    except ValueError as err:
        sys.exit(f"evaluate: eval.nproc: {err}")


def backend_kwargs(p: dict, *, device: str) -> dict:
    return dict(
        batch_size=p["batch_size"],
        device=device,
        dtype=p.get("dtype", "float32"),
        tensor_parallel_size=p.get("tensor_parallel_size", 1),
        max_model_len=p.get("max_model_len", 32768),
        seed=p.get("seed", 0),
        attn_implementation=p.get("attn_implementation", "sdpa"),
    )


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    name = args.model
    p = stage_params("eval")
    nproc = checked_nproc(p)
    devices = worker_devices(p, nproc)
    set_threads(p.get("threads", 1))
    try:
        model_dir = check_model_dir(args.model_dir)
    except FileNotFoundError as err:
        sys.exit(f"evaluate: {err}")
    root = Path(p["benchmarks_dir"])
    protocol = protocol_of(p)
    files = {b: root / f"eval_{b}.json" for b in p["benchmarks"]}
    missing = {b: f"benchmark file {f} does not exist" for b, f in files.items() if not f.is_file()}
    for bench, reason in missing.items():
        print(f"evaluate: {bench}: {reason}; the other benchmarks run", file=sys.stderr)
    rows_by_bench = {b: read_rows(f) for b, f in files.items() if b not in missing}
    if not rows_by_bench:
        sys.exit(f"evaluate: no benchmark file found under {root} (eval.benchmarks_dir in params.yaml)")
    sampling = protocol.sampling(p.get("seed", 0))
    signature = model_signature(model_dir)
    cache = frame_cache(p)
    # N workers: a video is decoded for every frame count by whichever worker needs it first (no serial warm-up)
    warm = tuple(protocol.rules(f) for f in p["frames"]) if cache is not None and nproc > 1 else ()
    runs = {
        f: EvalRun(
            media_root=root,
            rules=protocol.rules(f),
            sampling=sampling,
            batch_size=p["batch_size"],
            media_workers=p.get("media_workers", 2),
            wording=protocol.wording,
            frame_cache=cache,
            warm_rules=warm,
        )
        for f in p["frames"]
    }
    out_dir = args.results
    stores = {
        (b, f): ShardedStore(out_dir / f"{b}@{f}.jsonl", run_fingerprint(runs[f], rows, signature, p["backend"]))
        for b, rows in rows_by_bench.items()
        for f in p["frames"]
    }
    metrics = {
        "model": name,
        "protocol": protocol.to_dict(),
        "frames": {str(f): {} for f in p["frames"]},
        "nproc": nproc,
        "generated_now": 0,
        "frame_cache_seconds": 0.0 if nproc == 1 else None,
    }
    total = len(p["frames"]) * sum(len(r) for r in rows_by_bench.values())
    start = time.perf_counter()
    results: dict[tuple[str, int], list[dict]] = {}
    with tqdm(total=total, desc=f"eval {name}", unit="row", dynamic_ncols=True) as bar:
        if nproc == 1:
            backend = make_backend(p["backend"], str(model_dir), **backend_kwargs(p, device=p.get("device", "cpu")))
            for bench, rows in rows_by_bench.items():  # one benchmark's videos in the cache at a time suffice
                if cache is not None:
                    t0 = time.perf_counter()
                    warm_frames(cache, rows, root, protocol, p["frames"], p.get("media_workers", 2))
                    metrics["frame_cache_seconds"] += round(time.perf_counter() - t0, 2)
                for frames in p["frames"]:
                    store = stores[(bench, frames)]
                    store.load(rows)  # parts a killed N-process run left are merged in first
                    results[(bench, frames)], generated = evaluate_rows(
                        rows, backend, runs[frames], store.main, on_progress=bar.update
                    )
                    store.merge(rows)  # rows in row order, as N processes leave them
                    metrics["generated_now"] += generated
        else:
            results = run_workers(p, nproc, devices, model_dir, rows_by_bench, runs, stores, metrics, bar)
    for (bench, frames), rows_done in results.items():
        summary = summarize(bench, rows_done, task_field=p.get("task_field", "data_source"), mra=protocol.mra)
        metrics["frames"][str(frames)][benchmark_key(bench)] = benchmark_entry(summary)
    for per_bench in metrics["frames"].values():
        for bench, reason in missing.items():
            per_bench[benchmark_key(bench)] = {"score": None, "missing": reason}
        scores = [e["score"] for e in per_bench.values() if e["score"] is not None]
        per_bench["mean"] = round(sum(scores) / len(scores), 2) if scores else None
    seconds = time.perf_counter() - start
    metrics["seconds"] = round(seconds, 2)
    metrics["rows_per_second"] = round(metrics["generated_now"] / seconds, 3) if metrics["generated_now"] else None
    write_json(args.metrics, metrics)
    for frames, per in metrics["frames"].items():
        print(
            f"{name} @ {frames} frames ({protocol.label}): "
            + ", ".join(f"{b} {e['score']}" for b, e in per.items() if b != "mean")
            + f"; mean {per['mean']}"
        )


def run_workers(
    p: dict,
    nproc: int,
    devices: list[str] | None,
    model_dir: Path,
    rows_by_bench: dict,
    runs: dict,
    stores: dict,
    metrics: dict,
    bar,
) -> dict:
    """Every missing batch on ``nproc`` worker processes, then the parts merged into the outputs; exits (after the
    merge) when a worker died, naming it and the rows left for the next run."""
    done = {key: store.load(rows_by_bench[key[0]]) for key, store in stores.items()}
    device = "cuda" if devices is not None else p.get("device", "cpu")  # a worker sees its GPU(s) from cuda:0
    job = EvalJob(
        backend=p["backend"],
        model_dir=str(model_dir),
        backend_kwargs=backend_kwargs(p, device=device),
        rows=rows_by_bench,
        runs=runs,
        outputs={key: str(s.path) for key, s in stores.items()},
        threads=p.get("threads", 1),
        batch_size=p["batch_size"],
        media_workers=p.get("media_workers", 2),
    )
    units = plan_units(job, done)
    bar.update(sum(len(d) for d in done.values()))

    def on_done(unit, _worker: int) -> None:
        metrics["generated_now"] += len(unit.write)
        bar.update(len(unit.write))

    try:
        pool = run_pool(job, units, nproc, devices=devices, on_done=on_done)
    finally:  # whatever happened, what the workers wrote goes into the outputs
        done = {key: store.merge(rows_by_bench[key[0]]) for key, store in stores.items()}
    left = sum(len(rows_by_bench[key[0]]) - len(d) for key, d in done.items())
    for line in pool.failures:
        print(f"evaluate: {line}", file=sys.stderr)
    if pool.failures or left:
        sys.exit(
            f"evaluate: {left} rows not generated ({len(pool.failures)} of {min(nproc, len(units))} workers "
            "failed); what was written is kept: rerun the stage to generate only the missing rows"
        )
    return {key: [d[r["problem_id"]] for r in rows_by_bench[key[0]]] for key, d in done.items()}


if __name__ == "__main__":
    main(sys.argv[1:])
