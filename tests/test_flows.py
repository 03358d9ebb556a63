"""The Prefect flows' plumbing without a server: pools per stage, the run plan, the interpreter a stage gets."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from flows.pipeline import plan, pool_of, run_order
from flows.stages import DVC, stage_env

from .conftest import REPO


def test_gpu_stages_go_to_the_gpu_pool():
    assert [
        pool_of(s) for s in ("synth", "collect", "cot", "filter", "sft", "rl", "evaluate@base", "eval", "report")
    ] == ["cpu", "cpu", "gpu", "cpu", "gpu", "gpu", "gpu", "gpu", "cpu"]


def test_plan_groups_consecutive_stages_of_a_pool_in_dvc_order(project):
    """Only the top dvc.yaml's pipeline: another dvc.yaml in the repository (toy/) is a pipeline of its own."""
    (project / "toy").mkdir()
    shutil.copy(REPO / "toy" / "dvc.yaml", project / "toy" / "dvc.yaml")
    shutil.copy(REPO / "toy" / "params.yaml", project / "toy" / "params.yaml")
    assert plan(project) == [
        ("cpu", ["synth", "base_model", "collect"]),
        ("gpu", ["cot"]),
        ("cpu", ["filter"]),
        ("gpu", ["sft", "rl", "evaluate@base", "evaluate@sft", "evaluate@rl", "eval"]),
        ("cpu", ["report"]),
    ]


def test_the_run_order_follows_the_dependencies_not_the_file_order(project):
    """A stage a user adds at the top of dvc.yaml still runs after what it needs."""
    dvc_yaml = project / "dvc.yaml"
    spec = yaml.safe_load(dvc_yaml.read_text())
    spec["stages"] = {"report": spec["stages"].pop("report"), **spec["stages"]}
    dvc_yaml.write_text(yaml.safe_dump(spec, sort_keys=False))
    assert run_order(project) == [
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


def _recording_python(directory: Path, log: Path) -> Path:
    """A `python` that notes its arguments, then runs this interpreter: a stand-in for a second environment."""
    directory.mkdir()
    wrapper = directory / "python"
    wrapper.write_text(f'#!/bin/sh\necho "$@" >> {log}\nexec {sys.executable} "$@"\n')
    wrapper.chmod(0o755)
    return wrapper


@pytest.mark.slow
def test_a_gpu_stage_runs_under_the_configured_interpreter(project, tmp_path_factory):
    env_root = tmp_path_factory.mktemp("gpu-env")  # outside the project
    log = env_root / "calls.log"
    gpu_python = _recording_python(env_root / "bin", log)
    env = {**stage_env(str(gpu_python)), "PYTHONPATH": str(project)}
    subprocess.run(
        [*DVC, "repro", "--single-item", "synth"], cwd=project, env=env, check=True, capture_output=True, timeout=600
    )
    assert log.read_text().split() == ["-m", "tasks.synth"]  # DVC's `python -m tasks.synth` was that interpreter
    assert (project / "data" / "synth" / "train.json").is_file()


def test_without_a_gpu_python_stages_get_the_workers_interpreter(monkeypatch):
    monkeypatch.setenv("PATH", "/usr/bin")
    assert stage_env()["PATH"].split(os.pathsep)[0] == str(Path(sys.executable).parent)
    assert stage_env()["DVC_NO_ANALYTICS"] == "1"
