"""One model over the benchmark files at each frame count (the `evaluate` stage's core): per (benchmark, frames) the
rows' outputs, resumable, on one process or ``nproc`` worker processes (parallel.py), and the metrics dict.

Per (benchmark, frames) the outputs go to ``<results>/<benchmark>@<frames>.jsonl`` as they are produced; either way
they end in row order, so N workers leave the files a single process does, byte for byte.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..data.rows import read_rows
from ..distributed import gpu_groups
from ..generation import make_backend
from ..media import FrameCache, MediaError, MediaRules
from ..models import family_of, model_signature
from .parallel import EvalJob, ShardedStore, plan_units, run_pool
from .protocol import EvalProtocol
from .runner import EvalRun, evaluate_rows, run_fingerprint
from .summary import benchmark_key, summarize

if TYPE_CHECKING:
    from ..params import EvalParams

Progress = Callable[[int], None]


class EvalIncomplete(RuntimeError):
    """Workers died: what they wrote is merged into the outputs, the rest is left for the next run."""

    def __init__(self, message: str, failures: list[str]):
        super().__init__(message)
        self.failures = failures  # one line per worker that did not finish cleanly


@dataclass
class Benchmarks:
    """The benchmark files found under ``root`` (row paths are relative to it) and why the others are missing."""

    root: Path
    rows: dict[str, list[dict]]  # by benchmark
    missing: dict[str, str]  # benchmark -> reason

    @classmethod
    def read(cls, root: str | Path, names: list[str]) -> Benchmarks:
        root = Path(root)
        files = {b: root / f"eval_{b}.json" for b in names}
        missing = {b: f"benchmark file {f} does not exist" for b, f in files.items() if not f.is_file()}
        return cls(root, {b: read_rows(f) for b, f in files.items() if b not in missing}, missing)

    def total(self, frames: list[int]) -> int:
        return len(frames) * sum(len(r) for r in self.rows.values())


@dataclass
class ModelEval:
    results: dict[tuple[str, int], list[dict]]  # (benchmark, frames) -> rows with their outputs, in row order
    metrics: dict  # reproduced byte for byte by the same inputs
    run: dict  # how this run went (timings, rows generated now): the run record, never part of the metrics


def frame_cache(cfg: EvalParams) -> FrameCache | None:
    c = cfg.frame_cache
    return FrameCache(c.dir, int(c.max_gb * 2**30)) if c is not None and c.dir else None


def warm_frames(cache: FrameCache, rows: list[dict], root: Path, rules: Sequence[MediaRules], workers: int) -> int:
    """Decode every video once, at the union of its frame counts' indices (one ``rules`` each), into the cache.
    Unreadable videos are left to the runner, which records their error per row."""
    paths = sorted({root / str(r["path"]) for r in rows if r.get("data_type") == "video" and "path" in r})

    def warm(path: Path) -> None:
        try:
            cache.warm(path, rules)
        except (MediaError, OSError, ValueError):
            pass

    with ThreadPoolExecutor(max(1, workers)) as pool:
        list(pool.map(warm, paths))
    return len(paths)


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


def worker_devices(cfg: EvalParams) -> list[str] | None:
    """Each worker's CUDA_VISIBLE_DEVICES on GPUs (``tensor_parallel_size`` GPUs each), None on CPU or alone."""
    if cfg.nproc == 1 or not cfg.device.startswith("cuda"):
        return None
    return gpu_groups(cfg.nproc, cfg.tensor_parallel_size)  # enough GPUs: checked with the config


class ModelEvaluation:
    """One model's (benchmark, frames) outputs: their runs (rules, sampling, wording) and resumable stores."""

    def __init__(self, cfg: EvalParams, model_dir: Path, benchmarks: Benchmarks, results_dir: Path):
        self.cfg, self.model_dir, self.benchmarks = cfg, model_dir, benchmarks
        self.protocol = cfg.protocol_config()
        self.cache = frame_cache(cfg)
        sampling = self.protocol.sampling(cfg.seed)
        # N workers: a video is decoded for every frame count by whichever worker needs it first (no serial warm-up)
        # frames resized for the model's patches (its family's factor)
        self.rules = {f: family_of(model_dir).media_rules(self.protocol.rules(f)) for f in cfg.frames}
        warm = tuple(self.rules.values()) if self.cache is not None and cfg.nproc > 1 else ()
        self.runs = {
            f: EvalRun(
                media_root=benchmarks.root,
                rules=self.rules[f],
                sampling=sampling,
                batch_size=cfg.batch_size,
                media_workers=cfg.media_workers,
                wording=self.protocol.wording,
                frame_cache=self.cache,
                warm_rules=warm,
            )
            for f in cfg.frames
        }
        signature = model_signature(model_dir)
        self.stores = {
            (b, f): ShardedStore(
                results_dir / f"{b}@{f}.jsonl", run_fingerprint(self.runs[f], rows, signature, cfg.backend)
            )
            for b, rows in benchmarks.rows.items()
            for f in cfg.frames
        }
        self.record = {"nproc": cfg.nproc, "generated_now": 0, "frame_cache_seconds": 0.0 if cfg.nproc == 1 else None}

    def run(self, name: str, on_progress: Progress) -> ModelEval:
        """Every missing row generated, then the metrics; raises EvalIncomplete (after the merge) when a worker died."""
        start = time.perf_counter()
        results = self.in_process(on_progress) if self.cfg.nproc == 1 else self.on_workers(on_progress)
        metrics = eval_metrics(name, self.protocol, self.cfg, results, self.benchmarks.missing)
        seconds = time.perf_counter() - start
        generated = self.record["generated_now"]
        self.record["seconds"] = round(seconds, 2)
        self.record["rows_per_second"] = round(generated / seconds, 3) if generated else None
        return ModelEval(results, metrics, self.record)

    def in_process(self, on_progress: Progress) -> dict:
        cfg, record, results = self.cfg, self.record, {}
        backend = make_backend(cfg.backend, str(self.model_dir), **backend_kwargs(cfg, device=cfg.device))
        for bench, rows in self.benchmarks.rows.items():  # one benchmark's videos in the cache at a time suffice
            if self.cache is not None:
                t0 = time.perf_counter()
                warm_frames(self.cache, rows, self.benchmarks.root, list(self.rules.values()), cfg.media_workers)
                record["frame_cache_seconds"] = round(record["frame_cache_seconds"] + time.perf_counter() - t0, 2)
            for frames in cfg.frames:
                store = self.stores[(bench, frames)]
                store.load(rows)  # parts a killed N-process run left are merged in first
                results[(bench, frames)], generated = evaluate_rows(
                    rows, backend, self.runs[frames], store.main, on_progress=on_progress
                )
                store.merge(rows)  # rows in row order, as N processes leave them
                record["generated_now"] += generated
        return results

    def on_workers(self, on_progress: Progress) -> dict:
        """Every missing batch on ``cfg.nproc`` worker processes, then the parts merged into the outputs."""
        cfg, rows, stores = self.cfg, self.benchmarks.rows, self.stores
        devices = worker_devices(cfg)
        done = {key: store.load(rows[key[0]]) for key, store in stores.items()}
        device = "cuda" if devices is not None else cfg.device  # a worker sees its GPU(s) from cuda:0
        job = EvalJob(
            backend=cfg.backend,
            model_dir=str(self.model_dir),
            backend_kwargs=backend_kwargs(cfg, device=device),
            rows=rows,
            runs=self.runs,
            outputs={key: str(s.path) for key, s in stores.items()},
            threads=cfg.threads,
            batch_size=cfg.batch_size,
            media_workers=cfg.media_workers,
        )
        units = plan_units(job, done)
        on_progress(sum(len(d) for d in done.values()))

        def on_done(unit, _worker: int) -> None:
            self.record["generated_now"] += len(unit.write)
            on_progress(len(unit.write))

        try:
            pool = run_pool(job, units, cfg.nproc, devices=devices, on_done=on_done)
        finally:  # whatever happened, what the workers wrote goes into the outputs
            done = {key: store.merge(rows[key[0]]) for key, store in stores.items()}
        left = sum(len(rows[key[0]]) - len(d) for key, d in done.items())
        if pool.failures or left:
            raise EvalIncomplete(
                f"{left} rows not generated ({len(pool.failures)} of {min(cfg.nproc, len(units))} workers "
                "failed); what was written is kept: rerun the stage to generate only the missing rows",
                pool.failures,
            )
        return {key: [d[r["problem_id"]] for r in rows[key[0]]] for key, d in done.items()}


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


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


def eval_metrics(name: str, protocol: EvalProtocol, cfg: EvalParams, results: dict, missing: dict[str, str]) -> dict:
    """frames -> benchmark -> numbers (missing benchmarks named with their reason) and the mean over the scored."""
    metrics = {"model": name, "protocol": protocol.to_dict(), "frames": {str(f): {} for f in cfg.frames}}
    for (bench, frames), rows_done in results.items():
        summary = summarize(bench, rows_done, task_field=cfg.task_field, mra=protocol.mra)
        metrics["frames"][str(frames)][benchmark_key(bench)] = benchmark_entry(summary)
    for per_bench in metrics["frames"].values():
        for bench, reason in missing.items():
            per_bench[benchmark_key(bench)] = {"score": None, "missing": reason}
        scores = [e["score"] for e in per_bench.values() if e["score"] is not None]
        per_bench["mean"] = round(sum(scores) / len(scores), 2) if scores else None
    return metrics


def score_lines(metrics: dict, label: str) -> list[str]:
    """One line per frame count: every benchmark's score and the mean."""
    return [
        f"{metrics['model']} @ {frames} frames ({label}): "
        + ", ".join(f"{b} {e['score']}" for b, e in per.items() if b != "mean")
        + f"; mean {per['mean']}"
        for frames, per in metrics["frames"].items()
    ]
