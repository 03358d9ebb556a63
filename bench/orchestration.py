"""Benchmark: what orchestration adds to a stage, DVC and a Prefect deployment run against the stage module alone.

Each measured stage (``filter`` and ``report`` by default: cheap, so the overhead shows) runs in a throw-away copy
of a project whose pipeline is complete (``bench.harness.project``), three ways, interleaved ``--repeats`` times:

* direct  - ``python -m tasks.<stage>``: the stage's own work;
* dvc     - ``dvc repro --single-item <stage>``: + DVC (hashing deps and outs, caching, the lock file);
* prefect - ``prefect deployment run videor1-stages/cpu`` with that stage, on a local server with a process worker
            (``scripts/prefect_local.sh``), watched to completion: + Prefect (scheduling, the worker's poll and
            process start, flow and task runs, ``dvc status``), then DVC.

Before every run the stage's outputs and DVC's cache are deleted, so DVC and the flow must run it.

    python -m bench.orchestration [--stages filter,report] [--repeats 3]
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

from bench import harness

OUTPUTS = {"filter": ["data/cot_filtered.parquet", "metrics/filter.json"], "report": ["reports/summary.md"]}


def main() -> None:
    ap = harness.arguments(__doc__)
    ap.add_argument("--stages", default="filter,report")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    py = sys.executable
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        project = Path(tmp) / "project"
        skip_cache = lambda folder, names: ["cache"] if folder.endswith(".dvc") else []  # noqa: E731
        shutil.copytree(harness.project(), project, symlinks=True, ignore=skip_cache)  # the whole pipeline, run
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

        def run(cmd: list[str]):
            out = subprocess.run(cmd, cwd=project, env=env, capture_output=True, text=True)
            if out.returncode != 0:
                raise RuntimeError(f"{cmd} failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")

        def clear(stage: str) -> None:
            shutil.rmtree(project / ".dvc" / "cache", ignore_errors=True)
            for rel in OUTPUTS[stage]:
                path = project / rel
                shutil.rmtree(path) if path.is_dir() else path.unlink(missing_ok=True)

        run(["bash", "scripts/prefect_local.sh", "start"])
        rows = []
        try:
            for stage in args.stages.split(","):
                flow = [
                    "deployment",
                    "run",
                    "videor1-stages/cpu",
                    "--param",
                    f"stages={json.dumps([stage])}",
                    "--watch",
                ]
                cases = {
                    "direct": lambda stage=stage: run([py, "-m", f"tasks.{stage}"]),
                    "dvc": lambda stage=stage: run([py, "-m", "dvc", "repro", "--single-item", stage]),
                    "prefect": lambda flow=flow: run([py, "-m", "prefect", *flow]),
                }
                t = harness.interleave(cases, args.repeats, warmup=0, before=lambda _, stage=stage: clear(stage))
                m = {way: timing.median for way, timing in t.items()}
                rows.append(
                    {
                        "stage": stage,
                        **{f"{way} s": v for way, v in m.items()},
                        "DVC adds s": m["dvc"] - m["direct"],
                        "Prefect + DVC add s": m["prefect"] - m["direct"],
                    }
                )
        finally:
            subprocess.run(["bash", "scripts/prefect_local.sh", "stop"], cwd=project, env=env)
    md = [
        "# Orchestration overhead per stage (tiny profile, CPU)",
        "",
        f"Medians of {args.repeats} interleaved runs; the stage's outputs and DVC's cache deleted before every run; "
        "Prefect on a local server with a process worker polling every second.",
        "",
        *harness.table(rows),
        "",
        "DVC's share is hashing the stage's dependencies and outputs, caching the outputs and writing dvc.lock. "
        "Prefect's is per child flow run, not per stage: the run is scheduled, a worker polls for it and starts a "
        "process that imports Prefect and the flow, and the task asks `dvc status` before `dvc repro`; the pipeline "
        "sends each stretch of consecutive stages of one pool as one child run (5 for the whole pipeline).",
    ]
    versions = {name: __import__(name).__version__ for name in ("dvc", "prefect")}
    print(harness.write("orchestration", {"config": vars(args), "results": rows}, md, args.out, **versions))


if __name__ == "__main__":
    main()
