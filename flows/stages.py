"""The `videor1-stages` flow: run some DVC stages in order, one Prefect task per stage.

A stage DVC reports as up to date is skipped, so rerunning or retrying a flow
never redoes finished work; its task run ends in a Completed state named "Skipped", so the UI tells it
apart from a stage that ran. Each stage's output streams into the task's log.
A stage's `python -m tasks.<stage>` runs under the worker's interpreter, or for GPU stages under
params.yaml `orchestration.gpu_python` if set (an environment with vLLM, say): that interpreter's
directory goes first on PATH. Given a ``handoff`` (a run that spans machines, flows/checkout.py), the stages run
in this worker's own checkout, on the run's git branch, with their inputs pulled from the DVC remote and their
outputs pushed to it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prefect import flow, get_run_logger, task
from prefect.states import Completed, State

from flows.checkout import RunCheckout, dvc_repo, run_on_checkout  # absolute: Prefect loads entrypoints by file path
from videor1.params.load import ParamsFile
from videor1.params.orchestration import OrchestrationParams

DVC = [sys.executable, "-m", "dvc"]


def orchestration_params(project: Path) -> OrchestrationParams:
    """params.yaml's `orchestration` section, checked (a bad value fails the flow before any stage starts)."""
    return ParamsFile.read(project / "params.yaml").orchestration()


def up_to_date(stage: str, project: Path) -> bool:
    """Whether `dvc status <stage>` finds nothing to do (DVC's API here: a `dvc` process takes seconds to start)."""
    with dvc_repo(project) as repo:
        return repo.status(targets=[stage]) == {}


def stage_env(python: str | None = None) -> dict[str, str]:
    """The environment of a stage's `dvc repro`: the stage's `python` is ``python`` when given, else this
    worker's interpreter (not whatever `python` the worker's PATH happens to find); DVC analytics off."""
    interpreter_dir = Path(python or sys.executable).parent
    return {**os.environ, "PATH": f"{interpreter_dir}{os.pathsep}{os.environ.get('PATH', '')}", "DVC_NO_ANALYTICS": "1"}


@task(task_run_name="{stage}")
def run_stage(stage: str, project: str, python: str | None = None, handoff: dict | None = None) -> str | State:
    """`dvc repro --single-item <stage>` unless DVC says it is up to date: "ran", or a "Skipped" state. With a
    ``handoff``, the stage's inputs are pulled first and its outputs published after (flows/checkout.py)."""
    logger = get_run_logger()
    root = Path(project)

    def run_here(name: str) -> bool:
        return _repro_unless_up_to_date(name, root, python, logger)

    if handoff:
        checkout = RunCheckout(root, **handoff)
        ran = run_on_checkout(checkout, stage, run_here)
        if ran:
            logger.info(f"{stage}: outputs pushed to DVC remote {checkout.dvc_remote!r}, dvc.lock to {checkout.branch}")
    else:
        ran = run_here(stage)
    return "ran" if ran else Completed(name="Skipped", message="DVC: up to date, nothing run", data="skipped")


def _repro_unless_up_to_date(stage: str, root: Path, python: str | None, logger) -> bool:
    """Whether the stage ran: False when DVC found it up to date."""
    if up_to_date(stage, root):
        logger.info(f"{stage}: up to date, skipped")
        return False
    proc = subprocess.Popen(
        [*DVC, "repro", "--single-item", stage],
        cwd=root,
        env=stage_env(python),
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    for line in proc.stdout:
        if line.strip():
            logger.info(line.rstrip()[-2000:])
    if proc.wait() != 0:
        raise RuntimeError(f"stage {stage} failed with exit code {proc.returncode}")
    return True


@flow(name="videor1-stages", flow_run_name="{pool}: {stages}")
def stages(
    stages: list[str], pool: str = "cpu", project: str | None = None, handoff: dict | None = None
) -> dict[str, str]:
    """Run ``stages`` in order in ``project`` (default: the working directory, which a deployment's pull step sets
    to this worker's checkout); retries from params.yaml. ``handoff``: see flows/checkout.py."""
    root = Path(project or os.getcwd()).resolve()
    if handoff:  # the run's params, not whatever this checkout held before
        RunCheckout(root, **handoff).sync()
    p = orchestration_params(root)
    python = p.gpu_python if pool == "gpu" else None
    runner = run_stage.with_options(retries=p.retries, retry_delay_seconds=p.retry_delay_seconds)
    results = {stage: runner(stage, str(root), python, handoff) for stage in stages}
    return {stage: r.result() if isinstance(r, State) else r for stage, r in results.items()}  # "ran" | "skipped"
