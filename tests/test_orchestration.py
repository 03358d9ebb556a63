"""Prefect end to end: real local servers on loopback ports, the cpu and gpu pools with process workers,
`prefect deployment run 'videor1-pipeline/tiny'` on one checkout and across two (an S3 remote between them), a
worker killed mid-stage, and a retry that redoes none of the stages before it; the server's basic auth."""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import copy_project, sh, spanning_setup
from videor1.data.synth import BROKEN_CASES

STAGES = [
    "synth",
    "base_model",
    "collect",
    "cot",
    "filter",
    "sft",
    "rl",
    "evaluate@base",
    "evaluate@sft",
    "evaluate@rl",
    "eval",
    "report",
]

WAIT = """
import sys, time
from uuid import UUID
from prefect.client.orchestration import get_client
run_id, runs_before = UUID(sys.argv[1]), int(sys.argv[2])
with get_client(sync_client=True) as client:
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        run = client.read_flow_run(run_id)
        if run.run_count > runs_before and run.state.is_final():
            break
        time.sleep(1)
    print(run.run_count, run.state.name)
"""

TASK_RUNS = """
import json
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    runs = client.read_task_runs(limit=200)
    print(json.dumps([{"name": r.name, "state": r.state.name if r.state else None, "flow_run_id": str(r.flow_run_id)} for r in runs]))
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def set_params(project: Path) -> None:
    """Stage retries 1 s apart; one frame count for the evals (the pipeline runs twice in the test)."""
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["orchestration"].update(retries=1, retry_delay_seconds=1)
    params["tiny"]["eval"]["frames"] = [4]
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def check_outputs(project: Path) -> None:
    """What the README promises from a run: the quarantine with reasons, CoT and filter counts, eval metrics per
    model and frame count, the report, the summary, PNGs."""
    collect = json.loads((project / "metrics" / "collect.json").read_text())
    assert collect["rows"] > 0 and set(collect["by_data_type"]) == {"image", "video"}
    quarantine = [json.loads(line) for line in (project / "data" / "quarantine.jsonl").read_text().splitlines()]
    assert collect["quarantined"] == len(quarantine) == len(BROKEN_CASES)  # synth's broken rows, each with its reason
    assert all(q["reason"] and q["row"]["data_source"].startswith("synth-broken/") for q in quarantine)
    cot = json.loads((project / "metrics" / "cot.json").read_text())
    filtered = json.loads((project / "metrics" / "filter.json").read_text())
    assert cot["teacher"] == "scripted" and cot["completed"] == cot["rows_in"] > 0 and cot["errors"] == 0
    assert filtered["rows_in"] == cot["completed"]
    assert filtered["kept"] + sum(r["removed"] for r in filtered["rules"].values()) == filtered["rows_in"]
    kept = pl.read_parquet(project / "data" / "cot_filtered.parquet")
    assert kept.height == filtered["kept"] > 0 and kept["process"].str.starts_with("<think>").all()
    assert kept["teacher_spoil"].is_null().all()  # every spoiled row was caught
    frames = yaml.safe_load((project / "params.yaml").read_text())["tiny"]["eval"]["frames"]
    for model in ("base", "sft", "rl"):
        metrics = json.loads((project / "metrics" / f"eval_{model}.json").read_text())
        assert sorted(metrics["frames"]) == sorted(str(f) for f in frames)
        for per in metrics["frames"].values():
            assert set(per) == {"mvbench", "tempcompass", "videomme", "videommmu", "vsibench", "mmvu", "mean"}
            assert all(per[b]["rows"] == 2 and per[b]["failed"] == 0 for b in per if b != "mean")
    report = (project / "reports" / "eval.md").read_text()
    assert "| base | spec [1] | 4 | Qwen2.5-VL-7B (CoT) @ 16 |" in report
    assert "| rl | spec [1] | 4 | Video-R1-7B @ 16 |" in report
    summary = (project / "reports" / "summary.md").read_text()
    assert "## SFT" in summary and "## RL (T-GRPO)" in summary and "| rl | spec [1] | 4 |" in summary
    assert f"quarantined **{len(BROKEN_CASES)}**" in summary and "| media: file is empty | 1 |" in summary
    figures = sorted(p.name for p in (project / "reports" / "figures").glob("*.png"))
    assert figures == ["rl_length.png", "rl_reward.png", "rl_temporal_kl.png", "sft_loss.png"]


FLOW_RUNS = """
import json
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    runs = client.read_flow_runs(limit=200)
    print(json.dumps([{"name": r.name, "state": r.state.name if r.state else None} for r in runs]))
"""

LOGS = """
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    for log in client.read_logs(limit=200, offset=0):
        print(log.message)
    offset = 200
    while batch := client.read_logs(limit=200, offset=offset):
        for log in batch:
            print(log.message)
        offset += 200
"""

RUN_CONDITIONS = ("seconds", "time_", "_s", "memory")  # wall clock and peak memory differ between any two runs


def without_timings(value):
    if isinstance(value, dict):
        return {k: without_timings(v) for k, v in value.items() if not any(t in k for t in RUN_CONDITIONS)}
    return value


def lock_outs(project: Path) -> dict[str, str]:
    """Each stage output's hash in dvc.lock."""
    lock = yaml.safe_load((project / "dvc.lock").read_text())["stages"]
    return {o["path"]: o.get("md5") for stage in lock.values() for o in stage.get("outs", [])}


def start_site(where: Path, port: int, **extra: str) -> dict[str, str]:
    """A Prefect server on a loopback port with the pools, the deployments and the crash automation (run from
    ``where``); returns the environment its clients use."""
    env = {
        "PREFECT_HOME": str(where.parent / f"prefect-{port}"),
        "PREFECT_PORT": str(port),
        "PREFECT_API_URL": f"http://127.0.0.1:{port}/api",
        "PREFECT_WORKER_QUERY_SECONDS": "1",
        "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
        **extra,
    }
    sh(where, "bash", "scripts/prefect_local.sh", "server", env=env)
    return env


def start_worker(checkout: Path, pool: str, env: dict[str, str]) -> int:
    """A process worker for ``pool`` running flows in ``checkout`` (its own PREFECT_HOME there); its pid."""
    sh(
        checkout,
        "bash",
        "scripts/prefect_local.sh",
        "worker",
        pool,
        env={**env, "PREFECT_HOME": str(checkout / ".prefect")},
    )
    return int((checkout / ".prefect" / "pids").read_text().split()[-1])


def stop(checkout: Path, env: dict[str, str], home: str) -> None:
    sh(checkout, "bash", "scripts/prefect_local.sh", "stop", check=False, env={**env, "PREFECT_HOME": home})


def stop_all(started: list[tuple[Path, str]]) -> None:
    """Stop what each (checkout, PREFECT_HOME) started: the workers first, with SIGKILL by their recorded pids
    (with what they run; a worker ignores SIGTERM, so the script would wait 10 s for each), then the server."""
    import psutil

    if not started:  # failed before the site was up
        return
    server, *workers = started  # the server was started first
    for checkout, home in workers:
        pids = Path(home) / "pids"
        for pid in pids.read_text().split() if pids.exists() else []:
            try:
                worker = psutil.Process(int(pid))
                if Path(worker.cwd()) != checkout.resolve() or "worker" not in worker.cmdline():
                    continue  # gone already (the killed gpu worker), its pid taken by another process since
                for proc in [*worker.children(recursive=True), worker]:
                    proc.kill()
            except psutil.NoSuchProcess:  # gone already
                pass
        stop(checkout, {}, home)
    stop(server[0], {}, server[1])


@pytest.mark.slow
def test_a_run_across_two_machines_over_s3_survives_a_killed_gpu_worker_and_equals_a_one_checkout_run(
    project, filtered_project, tmp_path_factory
):
    """Two clones, each with its own DVC cache and its own worker (cpu, gpu), an S3 remote (moto on loopback) and a
    git remote between them. The GPU worker is killed (-9, with everything it started) in the middle of `rl`: the flow
    run is marked Crashed; a new worker and a retry finish it from rl's newest checkpoint, redoing no earlier stage.
    Beside it, the same pipeline on one checkout (the default: one checkout, one DVC cache), from the suite's shared
    template of the stages up to filter (made by `dvc repro` in its own directory): the results agree."""
    import os
    import signal
    import subprocess
    import time

    import psutil

    work = tmp_path_factory.mktemp("machines")
    set_params(project)
    one_checkout = copy_project(filtered_project, work / "one-checkout")  # the same params, synth to filter done
    set_params(one_checkout)
    stops = []  # (checkout, PREFECT_HOME) of everything started, for the cleanup
    reference = None  # started once the gpu worker is down: it runs while the server waits out the heartbeats

    s3_port, secret = free_port(), "videor1-s3-secret-for-this-test"
    s3_env = {"AWS_ACCESS_KEY_ID": "videor1-key", "AWS_SECRET_ACCESS_KEY": secret, "AWS_DEFAULT_REGION": "us-east-1"}
    moto = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(s3_port)],
        env={**os.environ, **s3_env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        import boto3

        deadline = time.monotonic() + 60
        while True:
            try:
                boto3.client(
                    "s3",
                    endpoint_url=f"http://127.0.0.1:{s3_port}",
                    **{k.lower(): v for k, v in s3_env.items() if k != "AWS_DEFAULT_REGION"},
                    region_name="us-east-1",
                ).create_bucket(Bucket="videor1")
                break
            except Exception:
                assert time.monotonic() < deadline, "moto's S3 server did not start"
                time.sleep(0.5)
        cpu, gpu = spanning_setup(project, work, "s3://videor1/dvc", endpointurl=f"http://127.0.0.1:{s3_port}")
        # the crash automation's grace as shipped: 3 heartbeats (Prefect sends one every 30 s at the most), so a
        # live run is never crashed unless two heartbeats in a row are lost, however loaded the machine
        env = start_site(cpu, free_port(), **s3_env)
        stops += [(cpu, env["PREFECT_HOME"]), (cpu, str(cpu / ".prefect")), (gpu, str(gpu / ".prefect"))]
        start_worker(cpu, "cpu", env)
        gpu_worker = start_worker(gpu, "gpu", env)

        run = sh(
            cpu,
            sys.executable,
            "-m",
            "prefect",
            "deployment",
            "run",
            "videor1-pipeline/tiny",
            "--param",
            "remote=storage",
            env=env,
        )
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", run.stdout).group(1)
        checkpoint = gpu / "models" / "rl-checkpoints" / "step-000002"
        deadline = time.monotonic() + 900
        while not checkpoint.is_dir():
            assert time.monotonic() < deadline and not (gpu / "models" / "rl").exists(), (
                "rl never reached its checkpoint"
            )
            time.sleep(0.05)
        worker = psutil.Process(gpu_worker)
        for proc in [worker, *worker.children(recursive=True)]:  # the machine goes down: the worker and all it runs
            proc.send_signal(signal.SIGKILL)
        assert not (gpu / "models" / "rl").exists(), "rl finished before the worker was killed"

        # the reference: the same flows on one checkout and one DVC cache (the default), in process on Prefect's
        # ephemeral server; deployments and workers are what the run across machines exercises
        reference_log = (work / "reference.log").open("w")  # a file, not a pipe: a full pipe would stall the run
        reference = subprocess.Popen(
            [sys.executable, "-c", "from flows.pipeline import pipeline; pipeline('tiny', use_deployments=False)"],
            cwd=one_checkout,
            stdout=reference_log,
            stderr=subprocess.STDOUT,
            env={
                **{k: v for k, v in os.environ.items() if k != "PREFECT_API_URL"},
                "PYTHONPATH": str(one_checkout),
                "DVC_NO_ANALYTICS": "1",
                "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                "PREFECT_HOME": str(work / "prefect-reference"),
                "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
            },
        )

        runs_before, state = sh(cpu, sys.executable, "-c", WAIT, run_id, "0", env=env).stdout.split()[-2:]
        assert state == "Failed"  # the pipeline saw its gpu child crash
        flow_runs = json.loads(sh(cpu, sys.executable, "-c", FLOW_RUNS, env=env).stdout.strip().splitlines()[-1])
        assert [r["state"] for r in flow_runs if r["name"].startswith("gpu: ['sft', 'rl'")] == ["Crashed"], flow_runs

        start_worker(gpu, "gpu", env)  # a new machine (here, the same disk) picks the pool up again
        sh(cpu, sys.executable, "-m", "prefect", "flow-run", "retry", run_id, env=env)
        runs_after, state = sh(cpu, sys.executable, "-c", WAIT, run_id, runs_before, env=env).stdout.split()[-2:]
        assert state == "Completed" and int(runs_after) > int(runs_before)

        tasks = json.loads(sh(cpu, sys.executable, "-c", TASK_RUNS, env=env).stdout.strip().splitlines()[-1])
        by_stage = {stage: [t["state"] for t in tasks if t["name"] == stage] for stage in STAGES}
        before_rl = STAGES[: STAGES.index("rl")]  # ran once, then found up to date on the branch
        assert all(sorted(by_stage[s]) == ["Completed", "Skipped"] for s in before_rl), by_stage
        assert by_stage["rl"].count("Completed") == 1, by_stage
        assert all(by_stage[s] == ["Completed"] for s in STAGES[STAGES.index("rl") + 1 :]), by_stage
        logs = sh(cpu, sys.executable, "-c", LOGS, env=env).stdout
        assert "rl: resuming from models/rl-checkpoints/step-000002 (step 2)" in logs

        # the pipeline's checkout ends on the run's branch with every output; the one-checkout run agrees
        assert reference.wait(timeout=900) == 0, (work / "reference.log").read_text()[-5000:]
        check_outputs(cpu)
        check_outputs(one_checkout)
        ours, theirs = lock_outs(cpu), lock_outs(one_checkout)
        assert ours.keys() == theirs.keys()
        # data and models by hash, rl's model too (resumed from its checkpoint, bit for bit); not metrics, plots, logs,
        # reports (they hold timings: compared below without them), the quarantine (its reasons name each checkout's
        # absolute paths) nor the checkpoints (working state)
        kept = [
            k
            for k in ours
            if not k.startswith(("metrics/", "plots/", "logs/", "reports/"))
            and k not in {"data/quarantine.jsonl", "models/rl-checkpoints"}
        ]
        assert {"data/synth", "models/sft", "models/rl", "data/cot.parquet", "data/eval/rl"} <= set(kept)
        assert {k: ours[k] for k in kept} == {k: theirs[k] for k in kept}
        assert (cpu / "data" / "quarantine.jsonl").read_text().replace(str(cpu), "") == (
            one_checkout / "data" / "quarantine.jsonl"
        ).read_text().replace(str(one_checkout), "")
        for name in ("eval_base", "eval_sft", "eval_rl", "collect", "filter", "cot", "sft", "rl"):
            ours_m = json.loads((cpu / "metrics" / f"{name}.json").read_text())
            theirs_m = json.loads((one_checkout / "metrics" / f"{name}.json").read_text())
            assert without_timings(ours_m) == without_timings(theirs_m), name
        assert (cpu / "reports" / "eval.md").read_text() == (one_checkout / "reports" / "eval.md").read_text()
        # the remote's credentials are in no file of the run and in no log
        for text in [
            *(p.read_text() for p in (cpu / "params.yaml", cpu / "dvc.lock", cpu / ".dvc" / "config")),
            logs,
            *(p.read_text() for p in Path(env["PREFECT_HOME"]).glob("*.log")),
            *(p.read_text() for c in (cpu, gpu) for p in (c / ".prefect").glob("*.log")),
        ]:
            assert secret not in text
    finally:
        if reference is not None:
            reference.kill()
            reference_log.close()
        moto.kill()
        stop_all(stops)


READ_FLOWS = """
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    print(len(client.read_flows()))
"""


@pytest.mark.slow
def test_a_server_for_other_machines_needs_basic_auth_and_refuses_clients_without_it(tmp_path):
    import os
    import subprocess
    import time
    import urllib.error
    import urllib.request

    repo = Path(__file__).resolve().parents[1]
    home = {"PREFECT_HOME": str(tmp_path / "prefect")}
    refused = sh(
        repo, "bash", "scripts/prefect_local.sh", "start", check=False, env={**home, "PREFECT_SERVER_HOST": "0.0.0.0"}
    )
    assert refused.returncode == 2 and "without PREFECT_SERVER_API_AUTH_STRING" in refused.stderr
    assert not (tmp_path / "prefect" / "pids").exists()  # nothing was started

    port, secret = free_port(), "videor1:s3cret-for-this-test"
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, **home, "PREFECT_SERVER_API_AUTH_STRING": secret, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = tmp_path / "server.log"
    with log.open("w") as fh:
        server = subprocess.Popen(
            [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            env=env,
            stdout=fh,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while True:  # the health probe stays open, as Kubernetes probes need
            try:
                urllib.request.urlopen(f"{api}/health", timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.5)

        def status(auth: str | None) -> int:
            import base64

            request = urllib.request.Request(
                f"{api}/flows/filter", data=b"{}", method="POST", headers={"Content-Type": "application/json"}
            )
            if auth:
                request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
            try:
                return urllib.request.urlopen(request, timeout=5).status
            except urllib.error.HTTPError as err:
                return err.code

        assert (status(None), status("videor1:wrong"), status(secret)) == (401, 401, 200)
        client_env = {**home, "PREFECT_API_URL": api}
        assert (
            sh(repo, sys.executable, "-c", READ_FLOWS, env={**client_env, "PREFECT_API_AUTH_STRING": secret}).returncode
            == 0
        )
        anonymous = sh(repo, sys.executable, "-c", READ_FLOWS, env=client_env, check=False)
        assert anonymous.returncode != 0 and "401" in anonymous.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "s3cret" not in log.read_text()  # the credential never reaches the log
