"""Prefect end to end: a real local server on a loopback port, the cpu and gpu pools with a process worker
each, `prefect deployment run 'videor1-pipeline/tiny'`, a stage that fails, and a retry that does not
redo the stages before it."""

from __future__ import annotations

import json
import re
import socket
import sys
from pathlib import Path

import pytest
import yaml

from tests.conftest import sh
from videor1.data.synth import BROKEN_CASES

STAGES = ["synth", "base_model", "collect", "cot", "filter", "sft", "rl", "evaluate@base", "evaluate@sft", "evaluate@rl",
          "eval", "report"]
UPSTREAM_OF_FILTER = ["data/synth/train.json", "models/base/model.safetensors", "data/collected.parquet", "data/cot.parquet"]

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

RUN_COUNT = """
import sys
from uuid import UUID
from prefect.client.orchestration import get_client
with get_client(sync_client=True) as client:
    run = client.read_flow_run(UUID(sys.argv[1]))
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


def set_params(project: Path, **filter_params) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["orchestration"].update(retries=1, retry_delay_seconds=1)
    params["tiny"]["filter"].update(filter_params)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def check_outputs(project: Path) -> None:
    """What the README promises from a run: eval metrics per model and frame count, the report, the summary, PNGs."""
    frames = yaml.safe_load((project / "params.yaml").read_text())["tiny"]["eval"]["frames"]
    for model in ("base", "sft", "rl"):
        metrics = json.loads((project / "metrics" / f"eval_{model}.json").read_text())
        assert sorted(metrics["frames"]) == sorted(str(f) for f in frames)
        for per in metrics["frames"].values():
            assert set(per) == {"mvbench", "tempcompass", "videomme", "videommmu", "vsibench", "mmvu", "mean"}
            assert all(per[b]["rows"] == 2 and per[b]["failed"] == 0 for b in per if b != "mean")
    report = (project / "reports" / "eval.md").read_text()
    assert "| base | spec [1] | 4 | Qwen2.5-VL-7B (CoT) @ 16 |" in report
    assert "| rl | spec [1] | 8 | Video-R1-7B @ 32 |" in report
    summary = (project / "reports" / "summary.md").read_text()
    assert "## SFT" in summary and "## RL (T-GRPO)" in summary and "| rl | spec [1] | 8 |" in summary
    assert f"quarantined **{len(BROKEN_CASES)}**" in summary and "| media: file is empty | 1 |" in summary
    figures = sorted(p.name for p in (project / "reports" / "figures").glob("*.png"))
    assert figures == ["rl_length.png", "rl_reward.png", "rl_temporal_kl.png", "sft_loss.png"]


@pytest.mark.slow
def test_deployment_runs_the_pipeline_and_a_failed_stage_is_retried_without_redoing_the_others(project):
    port = free_port()
    env = {"PREFECT_HOME": str(project / ".prefect"), "PREFECT_PORT": str(port),
           "PREFECT_API_URL": f"http://127.0.0.1:{port}/api", "PREFECT_WORKER_QUERY_SECONDS": "1"}
    set_params(project, min_accuracy="not a number")  # the filter stage will raise: an injected failure
    sh(project, "bash", "scripts/prefect_local.sh", "start", env=env)
    try:
        first = sh(project, sys.executable, "-m", "prefect", "deployment", "run", "videor1-pipeline/tiny", "--watch",
                   check=False, env=env)
        assert first.returncode != 0, first.stdout
        run_id = re.search(r"UUID: ([0-9a-f-]{36})", first.stdout).group(1)
        assert (project / "metrics" / "cot.json").is_file() and not (project / "metrics" / "filter.json").exists()
        before = {f: (project / f).stat().st_mtime_ns for f in UPSTREAM_OF_FILTER}

        runs_before, state = sh(project, sys.executable, "-c", RUN_COUNT, run_id, env=env).stdout.split()[-2:]
        assert state == "Failed"

        set_params(project, min_accuracy=0.6)  # fix the stage, then retry the failed pipeline run
        sh(project, sys.executable, "-m", "prefect", "flow-run", "retry", run_id, env=env)
        runs_after, state = sh(project, sys.executable, "-c", WAIT, run_id, runs_before, env=env).stdout.split()[-2:]
        assert state == "Completed" and int(runs_after) > int(runs_before)

        assert {f: (project / f).stat().st_mtime_ns for f in UPSTREAM_OF_FILTER} == before  # not redone
        tasks = json.loads(sh(project, sys.executable, "-c", TASK_RUNS, env=env).stdout.strip().splitlines()[-1])
        by_stage = {s: [t["state"] for t in tasks if t["name"] == s] for s in STAGES}
        upstream = STAGES[:STAGES.index("filter")]  # ran in the first run, found up to date in the retry
        assert all(sorted(set(by_stage[s])) == ["Completed", "Skipped"] for s in upstream), by_stage
        assert sorted(set(by_stage["filter"])) == ["Completed", "Failed"], by_stage
        assert all(by_stage[s] == ["Completed"] for s in STAGES[STAGES.index("filter") + 1:]), by_stage
        for f in ("reports/summary.md", "reports/eval.md", "metrics/eval_rl.json", "models/rl/model.safetensors"):
            assert (project / f).is_file(), f
        check_outputs(project)
        again = sh(project, sys.executable, "-m", "dvc", "repro", env=env)  # everything is up to date
        assert "Running stage" not in again.stdout
    finally:
        sh(project, "bash", "scripts/prefect_local.sh", "stop", env=env, check=False)


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
    refused = sh(repo, "bash", "scripts/prefect_local.sh", "start", check=False, env={**home, "PREFECT_SERVER_HOST": "0.0.0.0"})
    assert refused.returncode == 2 and "without PREFECT_SERVER_API_AUTH_STRING" in refused.stderr
    assert not (tmp_path / "prefect" / "pids").exists()  # nothing was started

    port, secret = free_port(), "videor1:s3cret-for-this-test"
    api = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, **home, "PREFECT_SERVER_API_AUTH_STRING": secret, "PREFECT_SERVER_ANALYTICS_ENABLED": "false"}
    log = tmp_path / "server.log"
    with log.open("w") as fh:
        server = subprocess.Popen([sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1",
                                   "--port", str(port)], env=env, stdout=fh, stderr=subprocess.STDOUT)
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

            request = urllib.request.Request(f"{api}/flows/filter", data=b"{}", method="POST",
                                             headers={"Content-Type": "application/json"})
            if auth:
                request.add_header("Authorization", "Basic " + base64.b64encode(auth.encode()).decode())
            try:
                return urllib.request.urlopen(request, timeout=5).status
            except urllib.error.HTTPError as err:
                return err.code

        assert (status(None), status("videor1:wrong"), status(secret)) == (401, 401, 200)
        client_env = {**home, "PREFECT_API_URL": api}
        assert sh(repo, sys.executable, "-c", READ_FLOWS, env={**client_env, "PREFECT_API_AUTH_STRING": secret}).returncode == 0
        anonymous = sh(repo, sys.executable, "-c", READ_FLOWS, env=client_env, check=False)
        assert anonymous.returncode != 0 and "401" in anonymous.stderr
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert "s3cret" not in log.read_text()  # the credential never reaches the log
