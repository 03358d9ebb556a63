"""Benchmark: the tiny eval stage on 2 worker processes against 1 (``eval.nproc``), wall time and outputs.

Runs the real stage, ``python -m tasks.evaluate MODEL``, as DVC runs it (a fresh interpreter: imports, model and
engine load, worker spawn, media decoding, generation, the fsynced appends and the merge all count), with the
active profile's ``eval`` section of params.yaml (tiny: six benchmark files × 2 frame counts, batch 16, 128 new
tokens, one torch thread per process) and only ``nproc`` changed. Each run gets a fresh working directory
(params.yaml with the nproc, links to ``data/`` and ``models/``), so nothing is resumed and the frame cache starts
cold (as in a fresh ``dvc repro``; decoding is part of the work the workers share). Runs alternate 1, 2, 1, 2...
``--repeats`` times. Reported: best and median wall seconds per nproc, the ratio 2-process / 1-process of the best
and of the medians, and whether every per-row output file of each 2-process run equals the 1-process run's byte
for byte. ``--backend vllm`` runs the same with vLLM engines (its CPU build here). Results go to
``bench/results/eval_nproc.json`` and ``.md``.

Run from the repository root after ``dvc repro evaluate@base`` (or any stage that builds models/base and
data/synth):

    python bench/bench_eval_nproc.py [--model base] [--repeats 2] [--backend transformers] [--out bench/results]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))
from _env import code_version, machine_info  # noqa: E402

RESULTS = REPO / "bench" / "results"


def stage_dir(root: Path, nproc: int, backend: str) -> Path:
    """A working directory for one run: params.yaml with ``eval.nproc`` (and the backend) set, data and models
    linked from the repository."""
    work = Path(tempfile.mkdtemp(prefix=f"nproc{nproc}-", dir=root))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params[params["profile"]]["eval"].update(nproc=nproc, backend=backend)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name in ("data", "models"):
        (work / name).symlink_to(REPO / name)
    return work


def run_stage(work: Path, model: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-m", "tasks.evaluate", model, "--results", "out", "--metrics", "metrics.json"],
                         cwd=work, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if out.returncode != 0:
        raise SystemExit(f"the stage failed in {work}:\n{out.stderr[-3000:]}")
    return seconds


def files(work: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((work / "out").glob("*.jsonl"))}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="base")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backend", default="transformers", choices=["transformers", "vllm"])
    ap.add_argument("--out", type=Path, default=RESULTS)
    args = ap.parse_args()
    if not (REPO / "models" / args.model).is_dir() or not (REPO / "data" / "synth").is_dir():
        raise SystemExit(f"models/{args.model} or data/synth is missing: run `dvc repro evaluate@base` first")
    p = yaml.safe_load((REPO / "params.yaml").read_text())
    section = p[p["profile"]]["eval"]
    walls: dict[int, list[float]] = {1: [], 2: []}
    equal, reference, rows = [], None, 0
    with tempfile.TemporaryDirectory(prefix="bench-eval-nproc-") as tmp:
        for _ in range(args.repeats):
            for nproc in (1, 2):
                work = stage_dir(Path(tmp), nproc, args.backend)
                walls[nproc].append(run_stage(work, args.model))
                got = files(work)
                if nproc == 1:
                    reference = reference or got
                    rows = sum(data.count(b"\n") for data in got.values())
                equal.append(got == reference) if nproc == 2 else None
                shutil.rmtree(work, ignore_errors=True)
    best = {n: min(w) for n, w in walls.items()}
    med = {n: statistics.median(w) for n, w in walls.items()}
    report = {
        "what": "tasks.evaluate wall time, eval.nproc 2 vs 1, fresh directories (cold frame cache)",
        "model": args.model, "backend": args.backend, "profile": p["profile"], "rows": rows,
        "benchmarks": section["benchmarks"], "frames": section["frames"], "batch_size": section["batch_size"],
        "max_new_tokens": (section.get("protocol_overrides") or {}).get("max_new_tokens"),
        "threads_per_process": section.get("threads", 1), "repeats": args.repeats,
        "seconds": {str(n): [round(s, 2) for s in w] for n, w in walls.items()},
        "best_s": {str(n): round(s, 2) for n, s in best.items()},
        "median_s": {str(n): round(s, 2) for n, s in med.items()},
        "ratio_best": round(best[2] / best[1], 3),
        "ratio_median": round(med[2] / med[1], 3),
        "outputs_equal_1_process": all(equal), "runs_compared": len(equal),
        "machine": machine_info(), "code": code_version(),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "eval_nproc.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    (args.out / "eval_nproc.md").write_text(markdown(report), encoding="utf-8")
    print(markdown(report))


def markdown(r: dict) -> str:
    cores = r["machine"]["cpu_affinity"]
    return f"""# Eval on 2 processes vs 1 (`eval.nproc`), tiny profile

`python -m tasks.evaluate {r['model']}` as DVC runs it, {r['backend']} backend, {r['rows']} rows
({len(r['benchmarks'])} benchmark files × frames {r['frames']}), batch {r['batch_size']}, max_new_tokens
{r['max_new_tokens']}, {r['threads_per_process']} torch thread per process, on {cores} cores (a machine other
engineers share). Fresh directory per run (cold frame cache, nothing resumed); runs alternate 1, 2, … ×
{r['repeats']}. Wall time covers interpreter start, imports, model load, worker spawn, decoding, generation,
fsynced appends and the merge.

| nproc | runs (s) | best s | median s |
|---|---|---|---|
| 1 | {', '.join(map(str, r['seconds']['1']))} | {r['best_s']['1']} | {r['median_s']['1']} |
| 2 | {', '.join(map(str, r['seconds']['2']))} | {r['best_s']['2']} | {r['median_s']['2']} |

**2-process / 1-process wall time: {r['ratio_best']} (best), {r['ratio_median']} (median).** Per-row output files
of every 2-process run equal the 1-process run's byte for byte: {'yes' if r['outputs_equal_1_process'] else 'NO'}
({r['runs_compared']} runs compared).

Two workers cannot halve the time on {cores} cores: each worker starts its own interpreter and loads its own model
(a few seconds the single process pays once), the parent and the media threads share the same cores, and other
engineers' tests run beside it. On a GPU node each worker has its own GPU, so generation, which dominates there,
scales with the number of GPUs.
"""


if __name__ == "__main__":
    main()
