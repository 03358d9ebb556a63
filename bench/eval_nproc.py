"""Benchmark: the tiny eval stage on 2 worker processes against 1 (``eval.nproc``): wall time, CPU time, outputs.

The real stage, ``python -m tasks.evaluate base``, as DVC runs it (a fresh interpreter: imports, model or engine
load, worker spawn, decoding, generation, the fsynced appends and the merge all count), with the tiny profile's
``eval`` settings and only ``nproc`` (and ``--backend``) changed, on the pipeline's ``models/base`` and
``data/synth``. Each run gets a fresh directory (params.yaml, links to ``data/`` and ``models/``), so nothing is
resumed and the frame cache starts cold, as in a fresh ``dvc repro``. Runs alternate 1, 2, 2, 1, ...
(``bench.harness.interleave``). Reported per nproc: median wall and CPU seconds (the stage's and its workers'),
cores kept busy, and whether every per-row output file of a 2-process run equals the 1-process run's byte for
byte. One entry per backend: a run replaces its own backend's and keeps the other's.

    python -m bench.eval_nproc [--repeats 2] [--backend transformers|vllm]
"""

from __future__ import annotations

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

from bench import harness


def run_stage(root: Path, tmp: Path, nproc: int, backend: str) -> dict:
    """One stage run in a fresh directory: its CPU seconds and output files."""
    work = Path(tempfile.mkdtemp(prefix=f"nproc{nproc}-", dir=tmp))
    params = yaml.safe_load((harness.REPO / "params.yaml").read_text())
    params["tiny"]["eval"].update(nproc=nproc, backend=backend)
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    for name in ("data", "models"):
        (work / name).symlink_to(root / name)
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cmd = [sys.executable, "-m", "tasks.evaluate", "base", "--results", "out", "--metrics", "metrics.json"]
    env = {**os.environ, "PYTHONPATH": str(harness.REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"the stage failed in {work}:\n{out.stderr[-3000:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    files = {p.name: p.read_bytes() for p in sorted((work / "out").glob("*.jsonl"))}
    shutil.rmtree(work)
    return {"cpu_s": after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime, "files": files}


def main() -> None:
    ap = harness.arguments(__doc__)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--backend", default="transformers", choices=["transformers", "vllm"])
    args = ap.parse_args()
    root, section = harness.project("base_model"), harness.params()["eval"]
    with tempfile.TemporaryDirectory() as tmp:
        cases = {n: lambda n=n: run_stage(root, Path(tmp), n, args.backend) for n in (1, 2)}
        timings = harness.interleave(cases, args.repeats, warmup=0)
    reference = timings[1].results[0]["files"]
    rows = []
    for n, t in timings.items():
        cpu = [r["cpu_s"] for r in t.results]
        rows.append(
            {"nproc": n, "wall s": t.median, "CPU s": statistics.median(cpu), "cores busy": sum(cpu) / sum(t.seconds)}
        )
    path = args.out / "eval_nproc.json"
    backends = json.loads(path.read_text()).get("backends", {}) if path.exists() else {}
    backends = {name: b for name, b in backends.items() if "table" in b}  # an older writer's entries: dropped
    backends[args.backend] = {
        "rows": sum(data.count(b"\n") for data in reference.values()),
        "frames": section["frames"],
        "repeats": args.repeats,
        "runs": {n: t.summary() for n, t in timings.items()},
        "table": rows,
        "ratio_median": timings[2].median / timings[1].median,
        "outputs_equal_1_process": all(r["files"] == reference for r in timings[2].results),
    }
    md = [
        "# Eval on 2 processes against 1 (`eval.nproc`), tiny profile",
        "",
        "`python -m tasks.evaluate base` as DVC runs it, only `nproc` (and the backend) changed; a fresh directory "
        "per run (cold frame cache, nothing resumed); medians of interleaved runs. CPU: the stage's and its "
        "workers' user + system seconds; cores busy: CPU / wall.",
    ]
    for name, b in backends.items():
        md += [
            "",
            f"## {name}: {b['rows']} rows (6 benchmark files × frames {b['frames']}), {b['repeats']} repeat(s)",
            "",
        ]
        md += [*harness.table(b["table"]), ""]
        same = "yes" if b["outputs_equal_1_process"] else "NO"
        md.append(
            f"**2 processes / 1: {b['ratio_median']:.2f} of the wall time.** Output files equal 1 process's: {same}."
        )
    md += [
        "",
        "Two processes cannot halve the time on 2 shared cores: each worker pays its own interpreter, imports and "
        "model or engine load after the stage has started, which one process pays once. On a GPU node each worker "
        "has its own GPU and generation dominates; this machine measures only the CPU case.",
    ]
    print(harness.write("eval_nproc", {"backends": backends}, md, args.out))


if __name__ == "__main__":
    main()
