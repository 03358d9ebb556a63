"""A run across two checkouts (flows/checkout.py) over a local-directory DVC remote: stages hand their outputs
over, a push cut off half way is never taken for a whole output, and a damaged object is refused.

The same hand-over through Prefect, over an S3 remote, runs in tests/test_orchestration.py."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from flows.checkout import RunCheckout, run_on_checkout
from flows.stages import DVC, stage_env, up_to_date
from tests.conftest import kill_when, spanning_setup, tree_digest

BRANCH = "videor1/run/test"


def repro_here(root: Path):
    def run(stage: str) -> bool:
        if up_to_date(stage, root):
            return False
        subprocess.run(
            [*DVC, "repro", "--single-item", stage],
            cwd=root,
            env=stage_env(),
            check=True,
            capture_output=True,
            timeout=600,
        )
        return True

    return run


def run_on(checkout: RunCheckout, stage: str) -> None:
    """What a stage task does with a hand-over (flows.stages.run_stage), without Prefect."""
    run_on_checkout(checkout, stage, repro_here(checkout.root))


def objects(remote: Path) -> dict[str, bytes]:
    """The remote's objects by hash (a temporary file of an unfinished upload is none)."""
    found = {}
    for p in (remote / "files" / "md5").glob("??/*"):
        if len(p.name.removesuffix(".dir")) == 30:
            try:
                found[f"{p.parent.name}{p.name}"] = p.read_bytes()
            except FileNotFoundError:  # listed, then moved by the upload still running: not there yet
                continue
    return found


PUBLISH = """
import sys
from pathlib import Path
from flows.checkout import RunCheckout, stage_io
root = Path(sys.argv[1])
RunCheckout(root, sys.argv[2], "storage").publish("synth", stage_io(root, "synth"))
"""


@pytest.mark.slow
def test_stages_hand_over_through_the_remote_and_a_cut_push_is_never_taken_for_a_whole_output(project, tmp_path):
    remote = tmp_path / "dvc-remote"
    cpu, gpu = spanning_setup(project, tmp_path, str(remote))
    on_cpu, on_gpu = RunCheckout(cpu, BRANCH, "storage"), RunCheckout(gpu, BRANCH, "storage")
    on_cpu.start()

    # synth runs on the CPU machine and its publication is killed (-9) once the first object has reached the remote
    on_cpu.sync()
    assert repro_here(cpu)("synth")
    publish = subprocess.Popen(
        [sys.executable, "-c", PUBLISH, str(cpu), BRANCH],
        cwd=cpu,
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    kill_when(publish, lambda: bool(objects(remote)), within=300, group=True, poll=0.001)
    assert publish.returncode == -signal.SIGKILL, publish.stdout.read()
    written = objects(remote)
    synth_files = sum(1 for p in (cpu / "data" / "synth").rglob("*") if p.is_file())
    assert 0 < len(written) < synth_files  # cut off half way
    assert all(name.endswith(".dir") or hashlib.md5(data).hexdigest() == name for name, data in written.items())

    # the branch never named synth's output, so the other machine finds nothing to take, and says where it looked
    with pytest.raises(RuntimeError, match="data/synth .*not on the DVC remote 'storage'"):
        run_on(on_gpu, "collect")
    assert not (gpu / "data" / "synth").exists()

    run_on(on_cpu, "synth")  # the branch never recorded synth: it runs again (the same bytes) and is published
    assert (
        subprocess.run(
            ["git", "log", "--format=%s", f"origin/{BRANCH}"], cwd=cpu, capture_output=True, text=True, timeout=60
        ).stdout.splitlines()[0]
        == f"{BRANCH}: synth"
    )
    run_on(on_gpu, "base_model")  # on the GPU machine: pulls data/synth, builds its own base model (no remote has it)
    assert tree_digest(gpu / "data" / "synth") == tree_digest(cpu / "data" / "synth")
    assert (gpu / "models" / "base" / "model.safetensors").is_file()

    # a damaged object on the remote (what a non-atomic copy cut off would leave) is refused, not checked out
    damaged = next(p for p in (remote / "files" / "md5").glob("*/*") if not p.name.endswith(".dir"))
    damaged.chmod(0o644)
    damaged.write_bytes(damaged.read_bytes()[:10])
    fresh = tmp_path / "third-machine"
    subprocess.run(
        ["git", "clone", "-q", "-b", BRANCH, str(tmp_path / "remote.git"), str(fresh)], check=True, timeout=60
    )
    pull = subprocess.run([*DVC, "pull", "data/synth"], cwd=fresh, capture_output=True, text=True, timeout=600)
    assert pull.returncode != 0 and not any((fresh / "data" / "synth").rglob("*.json")), pull.stdout + pull.stderr
