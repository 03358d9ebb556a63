"""DVC stage `evaluate@<model>`: one model on the six benchmark files at each frame count.

    python -m tasks.evaluate base      # models/base -> data/eval/base/, metrics/eval_base.json

Per (benchmark, frames) the per-row outputs go to data/eval/<model>/<benchmark>@<frames>.jsonl
as they are produced; a killed run resumes without regenerating finished rows.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path

from tqdm import tqdm

from videor1.data.rows import read_rows
from videor1.eval import EvalRun, ResultStore, benchmark_key, evaluate_rows, run_fingerprint, summarize
from videor1.generation import SamplingConfig, make_backend
from videor1.io import write_json
from videor1.media import MediaRules
from videor1.models import check_model_dir, model_signature

from .params import set_threads, stage_params

PUBLIC_SCRIPT_TEMPERATURE = 0.1  # the public eval script's value; the paper says 0.01 (spec section 4)


def _pct(x: float | None) -> float | None:
    return None if x is None else round(100 * x, 2)


def sampling_config(p: dict) -> SamplingConfig:
    temperature = PUBLIC_SCRIPT_TEMPERATURE if p.get("public_script_temperature") else p["temperature"]
    return SamplingConfig(temperature=temperature, top_p=p["top_p"], max_new_tokens=p["max_new_tokens"], seed=p.get("seed", 0))


def media_rules(p: dict, frames: int) -> MediaRules:
    m = p["media"]
    return replace(MediaRules(**m), max_frames=frames)


def benchmark_entry(summary) -> dict:
    return {
        "score": _pct(summary.score),
        "accuracy": _pct(summary.accuracy),
        "mra": _pct(summary.mra),
        "score_failed_as_wrong": _pct(summary.score_failed_as_wrong),
        "rows": summary.rows,
        "scored": summary.scored,
        "failed": len(summary.failed),
        "tasks": {t: _pct(v) for t, v in summary.tasks.items()},
        "failed_rows": summary.failed,
    }


def main(argv: list[str]) -> None:
    if len(argv) != 1:
        sys.exit("usage: python -m tasks.evaluate MODEL   (a directory under models/)")
    name = argv[0]
    p = stage_params("eval")
    set_threads(p.get("threads", 1))
    try:
        model_dir = check_model_dir(Path("models") / name)
    except FileNotFoundError as err:
        sys.exit(f"evaluate: {err}")
    root = Path(p["benchmarks_dir"])
    files = {b: root / f"eval_{b}.json" for b in p["benchmarks"]}
    for f in files.values():
        if not f.is_file():
            sys.exit(f"evaluate: benchmark file {f} does not exist (benchmarks_dir in params.yaml)")
    backend = make_backend(p["backend"], str(model_dir), batch_size=p["batch_size"], device=p.get("device", "cpu"),
                           dtype=p.get("dtype", "float32"), tensor_parallel_size=p.get("tensor_parallel_size", 1),
                           max_model_len=p.get("max_model_len", 32768), seed=p.get("seed", 0))
    sampling = sampling_config(p)
    signature = model_signature(model_dir)
    rows_by_bench = {b: read_rows(f) for b, f in files.items()}
    total = len(p["frames"]) * sum(len(r) for r in rows_by_bench.values())
    out_dir = Path("data/eval") / name
    metrics = {"model": name, "frames": {}, "generated_now": 0}
    start = time.perf_counter()
    with tqdm(total=total, desc=f"eval {name}", unit="row", dynamic_ncols=True) as bar:
        for frames in p["frames"]:
            run = EvalRun(media_root=root, rules=media_rules(p, frames), sampling=sampling,
                          batch_size=p["batch_size"], media_workers=p.get("media_workers", 2))
            per_bench = {}
            for bench, rows in rows_by_bench.items():
                fp = run_fingerprint(run, rows, signature, p["backend"])
                store = ResultStore(out_dir / f"{bench}@{frames}.jsonl", fp)
                results, generated = evaluate_rows(rows, backend, run, store, on_progress=bar.update)
                metrics["generated_now"] += generated
                summary = summarize(bench, results, task_field=p.get("task_field", "data_source"))
                per_bench[benchmark_key(bench)] = benchmark_entry(summary)
            scores = [e["score"] for e in per_bench.values() if e["score"] is not None]
            per_bench["mean"] = round(sum(scores) / len(scores), 2) if scores else None
            metrics["frames"][str(frames)] = per_bench
    seconds = time.perf_counter() - start
    metrics["seconds"] = round(seconds, 2)
    metrics["rows_per_second"] = round(metrics["generated_now"] / seconds, 3) if metrics["generated_now"] else None
    write_json(Path("metrics") / f"eval_{name}.json", metrics)
    for frames, per in metrics["frames"].items():
        print(f"{name} @ {frames} frames: " + ", ".join(f"{b} {e['score']}" for b, e in per.items() if b != "mean")
              + f"; mean {per['mean']}")


if __name__ == "__main__":
    main(sys.argv[1:])
