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
"""

from __future__ import annotations

import argparse
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from tqdm import tqdm

from videor1.data.rows import read_rows
from videor1.eval import EvalRun, ResultStore, benchmark_key, evaluate_rows, run_fingerprint, summarize
from videor1.eval.protocol import EvalProtocol, resolve_protocol
from videor1.generation import make_backend
from videor1.io import write_json
from videor1.media import FrameCache, MediaError
from videor1.models import check_model_dir, model_signature

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


def warm_frames(cache: FrameCache, rows: list[dict], root: Path, protocol: EvalProtocol, frames: list[int],
                workers: int) -> int:
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


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    name = args.model
    p = stage_params("eval")
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
    backend = make_backend(p["backend"], str(model_dir), batch_size=p["batch_size"], device=p.get("device", "cpu"),
                           dtype=p.get("dtype", "float32"), tensor_parallel_size=p.get("tensor_parallel_size", 1),
                           max_model_len=p.get("max_model_len", 32768), seed=p.get("seed", 0))
    sampling = protocol.sampling(p.get("seed", 0))
    signature = model_signature(model_dir)
    cache = frame_cache(p)
    metrics = {"model": name, "protocol": protocol.to_dict(), "frames": {str(f): {} for f in p["frames"]},
               "generated_now": 0, "frame_cache_seconds": 0.0}
    total = len(p["frames"]) * sum(len(r) for r in rows_by_bench.values())
    out_dir = args.results
    start = time.perf_counter()
    with tqdm(total=total, desc=f"eval {name}", unit="row", dynamic_ncols=True) as bar:
        for bench, rows in rows_by_bench.items():  # one benchmark's videos in the cache at a time suffice
            if cache is not None:
                t0 = time.perf_counter()
                warm_frames(cache, rows, root, protocol, p["frames"], p.get("media_workers", 2))
                metrics["frame_cache_seconds"] += round(time.perf_counter() - t0, 2)
            for frames in p["frames"]:
                run = EvalRun(media_root=root, rules=protocol.rules(frames), sampling=sampling,
                              batch_size=p["batch_size"], media_workers=p.get("media_workers", 2),
                              wording=protocol.wording, frame_cache=cache)
                store = ResultStore(out_dir / f"{bench}@{frames}.jsonl", run_fingerprint(run, rows, signature, p["backend"]))
                results, generated = evaluate_rows(rows, backend, run, store, on_progress=bar.update)
                metrics["generated_now"] += generated
                summary = summarize(bench, results, task_field=p.get("task_field", "data_source"), mra=protocol.mra)
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
        print(f"{name} @ {frames} frames ({protocol.label}): " + ", ".join(f"{b} {e['score']}" for b, e in per.items() if b != "mean")
              + f"; mean {per['mean']}")


if __name__ == "__main__":
    main(sys.argv[1:])
