"""The DVC pipeline in a fresh copy of the project: `dvc repro collect` offline, then a no-op rerun; the paper profile refuses missing paths."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = ["dvc.yaml", "params.yaml", "tasks", "videor1", ".dvcignore"]


def sh(cwd: Path, *args: str, check: bool = True) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "PYTHONPATH": str(cwd), "DVC_NO_ANALYTICS": "1"}
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise AssertionError(f"{args} failed:\n{out.stdout}\n{out.stderr}")
    return out


@pytest.fixture
def project(tmp_path) -> Path:
    for name in PROJECT_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    params = yaml.safe_load((tmp_path / "params.yaml").read_text())
    params["tiny"]["synth"].update(train_video_rows=12, train_image_rows=10, eval_rows_per_benchmark=2)
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, sys.executable, "-m", "dvc", "init", "-q")
    sh(tmp_path, sys.executable, "-m", "dvc", "config", "core.analytics", "false")
    return tmp_path


@pytest.mark.slow
def test_repro_collect_then_noop(project):
    first = sh(project, sys.executable, "-m", "dvc", "repro", "collect")
    assert "Running stage 'collect'" in first.stdout
    assert (project / "data" / "collected.parquet").is_file()
    metrics = yaml.safe_load((project / "metrics" / "collect.json").read_text())
    assert metrics["rows"] > 0 and set(metrics["by_data_type"]) == {"image", "video"}

    second = sh(project, sys.executable, "-m", "dvc", "repro", "collect")
    assert "Running stage" not in second.stdout
    assert re.search(r"up to date", second.stdout)


@pytest.mark.slow
def test_paper_profile_refuses_missing_model_and_data(project):
    sh(project, sys.executable, "-m", "tasks.profile", "paper")
    assert yaml.safe_load((project / "params.yaml").read_text())["profile"] == "paper"
    base = sh(project, sys.executable, "-m", "tasks.base_model", check=False)
    assert base.returncode != 0 and "/data/models/Qwen2.5-VL-7B-Instruct does not exist" in base.stderr
    collect = sh(project, sys.executable, "-m", "tasks.collect", check=False)
    assert collect.returncode != 0 and "/data/video-r1/Video-R1-260k.json does not exist" in collect.stderr
