"""Benchmark: what orchestration adds to a stage, Prefect + DVC against running the stage module directly.

For each measured stage (default: `filter` and `report`, cheap stages, so the overhead shows), run in a
throw-away copy of the project whose pipeline is already complete, three ways:

* direct  - ``python -m tasks.<stage>``: the stage's own work;
* dvc     - ``dvc repro --single-item <stage>``: + DVC (hashing deps and outs, the lock file);
* prefect - ``prefect deployment run videor1-stages/cpu`` with that stage, on a local server with a
            process worker (scripts/prefect_local.sh), waited for to completion: + Prefect (scheduling,
            the worker's poll and process start, the flow and task runs, `dvc status`, then DVC).

Before each run the stage's outputs and DVC's cache are deleted, so DVC and the flow must run it. Wall times are medians of
``--repeats`` runs; overhead = configuration − direct. Results: bench/results/orchestration.{json,md}.

    python bench/bench_orchestration.py [--stages filter,report] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._env import code_version, machine_info  # noqa: E402

RESULTS = REPO / "bench" / "results"
COPY = [
    "dvc.yaml",
    "dvc.lock",
    "params.yaml",
    "tasks",
    "videor1",
    "flows",
    "prefect.yaml",
    "scripts",
    ".dvcignore",
    "data",
    "models",
    "metrics",
    "plots",
    "reports",
]
OUTPUTS = {"filter": ["data/cot_filtered.parquet", "metrics/filter.json"], "report": ["reports/summary.md"]}


def run(cmd: list[str], cwd: Path, env: dict) -> float:
    start = time.perf_counter()
    out = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        raise RuntimeError(f"{cmd} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    return time.perf_counter() - start


def clear(project: Path, stage: str) -> None:
    """Delete the stage's outputs and DVC's cache, from which DVC would otherwise restore them without running it."""
    shutil.rmtree(project / ".dvc" / "cache", ignore_errors=True)
    for rel in OUTPUTS[stage]:
        path = project / rel
        shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stages", default="filter,report")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    stages = args.stages.split(",")
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp:
        project = Path(tmp) / "project"
        project.mkdir()
        for name in COPY:
            src = REPO / name
            (shutil.copytree(src, project / name, symlinks=True) if src.is_dir() else shutil.copy(src, project / name))
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        env = {
            **os.environ,
            "PATH": f"{Path(py).parent}{os.pathsep}{os.environ['PATH']}",
            "PYTHONPATH": str(project),
            "DVC_NO_ANALYTICS": "1",
            "PREFECT_HOME": str(project / ".prefect"),
            "PREFECT_PORT": str(port),
            "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
            "PREFECT_WORKER_QUERY_SECONDS": "1",
        }
        subprocess.run(["git", "init", "-q"], cwd=project, check=True)
        subprocess.run([py, "-m", "dvc", "init", "-q"], cwd=project, check=True, env=env)
        subprocess.run([py, "-m", "dvc", "repro"], cwd=project, check=True, env=env, capture_output=True)  # lock ours
        subprocess.run(
            ["bash", "scripts/prefect_local.sh", "start"], cwd=project, check=True, env=env, capture_output=True
        )
        results = []
        try:
            for stage in stages:
                ways = {
                    "direct": [py, "-m", f"tasks.{stage}"],
                    "dvc": [py, "-m", "dvc", "repro", "--single-item", stage],
                    "prefect": [
                        py,
                        "-m",
                        "prefect",
                        "deployment",
                        "run",
                        "videor1-stages/cpu",
                        "--param",
                        f"stages={json.dumps([stage])}",
                        "--watch",
                    ],
                }
                times = {way: [] for way in ways}
                for _ in range(args.repeats):
                    for way, cmd in ways.items():  # interleaved, so drift hits all three alike
                        clear(project, stage)
                        times[way].append(run(cmd, project, env))
                med = {way: statistics.median(t) for way, t in times.items()}
                results.append(
                    {
                        "stage": stage,
                        "runs": times,
                        "median_s": med,
                        "overhead_dvc_s": med["dvc"] - med["direct"],
                        "overhead_prefect_dvc_s": med["prefect"] - med["direct"],
                    }
                )
                print(results[-1]["stage"], {k: round(v, 2) for k, v in med.items()}, flush=True)
        finally:
            subprocess.run(["bash", "scripts/prefect_local.sh", "stop"], cwd=project, env=env)
    import dvc
    import prefect

    report = {
        "config": {"stages": stages, "repeats": args.repeats},
        "results": results,
        "code": code_version(),
        "machine": machine_info(dvc=dvc.__version__, prefect=prefect.__version__),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "orchestration.json").write_text(json.dumps(report, indent=1) + "\n")
    lines = [
        "# Orchestration overhead per stage (tiny profile, CPU)",
        "",
        f"Median of {args.repeats} runs each; the stage's outputs and DVC's cache deleted before every run; Prefect on a local "
        "server with a process worker polling every 1 s.",
        "",
        "| stage | direct s | dvc repro s | prefect deployment run s | DVC adds s | Prefect + DVC add s | prefect / direct |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r["median_s"]
        lines.append(
            f"| {r['stage']} | {m['direct']:.2f} | {m['dvc']:.2f} | {m['prefect']:.2f} | {r['overhead_dvc_s']:.2f} | "
            f"{r['overhead_prefect_dvc_s']:.2f} | {m['prefect'] / m['direct']:.2f}x |"
        )
    dvc_add = [r["overhead_dvc_s"] for r in results]
    prefect_add = [r["overhead_prefect_dvc_s"] - r["overhead_dvc_s"] for r in results]
    lines += [
        "",
        f"DVC adds {min(dvc_add):.1f}–{max(dvc_add):.1f} s to a stage (hashing its dependencies and outputs, "
        f"caching the outputs, writing dvc.lock). A Prefect deployment run adds a further {min(prefect_add):.1f}–"
        f"{max(prefect_add):.1f} s: the run is scheduled, a process worker polls for it and starts a Python process "
        "that imports Prefect and the flow, the flow and task runs report their states, and the task asks "
        "`dvc status` before `dvc repro`. That cost is per child flow run, not per stage: the pipeline sends each "
        "stretch of consecutive stages of one pool as one child run (5 for the whole pipeline), where a further "
        "stage costs a task run and a `dvc status` (about 1 s).",
    ]
    (RESULTS / "orchestration.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
