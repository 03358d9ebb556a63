"""Outputs depend on the inputs only: not on the checkout's directory, not on the run, not on bytecode.

The committed dvc.lock is what a fresh `dvc repro` of the tiny profile makes on this kind of machine, so a fresh
clone's `dvc repro`, the README's ablation and its restore (`dvc checkout models/rl`) find every object the lock
names. Two things keep that true: every output is a function of the inputs (checked here by running the upstream
stages in two directories), and the lock is regenerated whenever the code or params change (checked here on the
committed tree: a stale lock fails with the command that fixes it).
"""

from __future__ import annotations

import json
import shutil
import sys

import pytest
import yaml

from .conftest import PROJECT_FILES, REPO, copy_project, sh

DVC = [sys.executable, "-m", "dvc"]
UPSTREAM = ["synth", "base_model", "collect", "cot", "filter", "sft"]


def stage_outputs(root) -> set[str]:
    """Every output dvc.yaml declares, a foreach stage's once per item (``evaluate@<model>``)."""
    stages = yaml.safe_load((root / "dvc.yaml").read_text())["stages"]
    params = yaml.safe_load((root / "params.yaml").read_text())
    paths = set()
    for stage in stages.values():
        items = [None]
        if "foreach" in stage:
            items, stage = params[stage["foreach"].strip("${}")], stage["do"]
        for key in ("outs", "metrics", "plots"):
            for out in stage.get(key, []):
                path = next(iter(out)) if isinstance(out, dict) else out
                paths |= {path if item is None else path.replace("${item}", str(item)) for item in items}
    return paths


def test_the_committed_lock_names_the_committed_code_and_params(tmp_path):
    """`dvc status` on a copy of the tree without any output: every changed dependency is a missing output of an
    upstream stage, never code, a command or a parameter that moved on since dvc.lock was made."""
    for name in [*PROJECT_FILES, "dvc.lock"]:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, tmp_path / name)
    sh(tmp_path, "git", "init", "-q")
    sh(tmp_path, *DVC, "init", "-q")
    status = json.loads(sh(tmp_path, *DVC, "status", "--json").stdout or "{}")
    outputs = stage_outputs(tmp_path)
    stale = {}
    for stage, changes in status.items():
        for change in changes:
            if not isinstance(change, dict):  # "changed command", "always changed"
                stale.setdefault(stage, []).append(change)
                continue
            for path, what in change.get("changed deps", {}).items():
                upstream = any(path == o or path.startswith(o.rstrip("/") + "/") for o in outputs)
                if not (upstream and what == "deleted"):
                    stale.setdefault(stage, []).append(f"{path}: {what}")
    assert not stale, f"dvc.lock is stale against the tree ({stale}): run `dvc repro` and commit dvc.lock"


@pytest.mark.slow
def test_two_checkouts_in_different_directories_make_identical_outputs(filtered_project, project, tmp_path_factory):
    """synth -> collect -> cot -> filter -> sft in two directories: the suite's shared template (synth to filter run
    in its own directory) with sft run in a copy elsewhere, and a fresh checkout that runs them all with bytecode
    written as on a user's machine. The two dvc.lock files hold the same entries (every dependency and output hash,
    models/sft included)."""
    other = copy_project(filtered_project, tmp_path_factory.mktemp("elsewhere") / "checkout")
    env = {"PYTHONDONTWRITEBYTECODE": ""}  # empty: Python writes .pyc files beside the sources it imports
    locks = []
    for root in (project, other):
        sh(root, *DVC, "repro", "-q", "sft", env=env)
        locks.append((root / "dvc.lock").read_text())
    assert any((project / "videor1").rglob("*.pyc")), "the stages wrote no bytecode: the test proves less than it says"
    # the same entries (every hash, command and parameter); stages are listed in the order each checkout ran them
    ours, theirs = (yaml.safe_load(lock)["stages"] for lock in locks)
    assert set(ours) == set(UPSTREAM)
    assert ours == theirs
    quarantine = (project / "data" / "quarantine.jsonl").read_text()
    assert str(project) not in quarantine and "broken/" in quarantine  # the broken rows, named relative to the root
