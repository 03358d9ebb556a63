"""The `videor1-pipeline` flow: every DVC stage in order, GPU stages on the `gpu` pool, the rest on `cpu`.

Consecutive stages of one pool go to that pool's `videor1-stages` deployment as a
child flow run, so the UI shows the pipeline, each child run and each stage.
Retrying a failed pipeline run (UI or `prefect flow-run retry`) reruns it; stages
DVC reports as up to date are skipped, so finished work is not redone.

With a DVC remote named (the ``remote`` parameter, else params.yaml `orchestration.remote`), the run spans
machines: each worker runs its stages in its own clone, and the run's git branch and the DVC remote carry
everything between them (flows/checkout.py). At the end the pipeline's own checkout holds the branch's tip
and every output, pulled.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
from prefect import flow, get_run_logger
from prefect.deployments import run_deployment

from flows.checkout import BRANCH_PREFIX, RunCheckout, stage_target  # absolute: Prefect loads entrypoints by file path
from flows.stages import orchestration_params, stages

GPU_STAGES = ("cot", "sft", "rl", "evaluate", "eval")  # stage names; evaluate@<model> belongs with evaluate


def pool_of(stage: str) -> str:
    return "gpu" if stage.split("@")[0] in GPU_STAGES else "cpu"


def run_order(project: Path) -> list[str]:
    """DVC's stages (foreach entries expanded) in an order that runs every stage after what it depends on,
    dvc.yaml's order where the graph leaves a choice, so a stage added anywhere in the file still runs right."""
    # Imported here: dvc.repo loaded before Prefect's `flow` (with torch already loaded) closes pytest's
    # captured stderr at exit, so importing this module from a test would crash the test run.
    from dvc.repo import Repo

    with Repo(str(project)) as repo:
        graph = repo.index.graph  # edges point from a stage to the stages it depends on
        position = {stage: i for i, stage in enumerate(graph.nodes)}
        # the pipeline is the top dvc.yaml and what it needs; other dvc.yaml files (toy/) are pipelines of their own
        top = [s for s in graph.nodes if os.path.relpath(s.dvcfile.path, project) == "dvc.yaml"]
        graph = graph.subgraph(set(top).union(*(nx.descendants(graph, s) for s in top)))
        ordered = nx.lexicographical_topological_sort(graph.reverse(), key=position.__getitem__)
        return [stage_target(stage, project) for stage in ordered]


def plan(project: Path) -> list[tuple[str, list[str]]]:
    """The run order grouped into consecutive runs of stages per pool."""
    groups: list[tuple[str, list[str]]] = []
    for stage in run_order(project):
        pool = pool_of(stage)
        if groups and groups[-1][0] == pool:
            groups[-1][1].append(stage)
        else:
            groups.append((pool, [stage]))
    return groups


@flow(name="videor1-pipeline")
def pipeline(
    profile: str = "tiny", use_deployments: bool = True, project: str | None = None, remote: str | None = None
) -> dict[str, str]:
    """Run the whole pipeline on the given profile (params.yaml is switched to it if needed). ``remote``: a DVC
    remote's name to run each pool's stages in its worker's own checkout (default: params.yaml's, else none)."""
    from prefect.runtime import flow_run

    logger = get_run_logger()
    root = Path(project or os.getcwd()).resolve()
    settings = orchestration_params(root)
    remote = remote or settings.remote
    checkout = None
    if remote:  # the same branch on a retry of this flow run: finished stages are found there and skipped
        checkout = RunCheckout(root, f"{BRANCH_PREFIX}{flow_run.get_name() or 'local'}", remote, settings.git_remote)
        checkout.start()
        logger.info(
            f"run branch {checkout.branch} on git remote {checkout.git_remote!r}, data on DVC remote {remote!r}"
        )
    subprocess.run([sys.executable, "-m", "tasks.profile", profile], cwd=root, check=True, capture_output=True)
    if checkout is not None:
        checkout.commit(f"{checkout.branch}: profile {profile}", all_tracked=True)
    handoff = checkout.handoff if checkout is not None else None
    results: dict[str, str] = {}
    for pool, group in plan(root):
        logger.info(f"{pool} pool: {', '.join(group)}")
        if not use_deployments:
            results.update(stages(group, pool=pool, project=str(root), handoff=handoff))
            continue
        # one machine: the child runs in this checkout; a spanning run: in its own worker's checkout
        where = {"handoff": handoff} if handoff else {"project": str(root)}
        child = run_deployment(
            f"videor1-stages/{pool}",
            parameters={"stages": group, "pool": pool, **where},
            as_subflow=True,
            poll_interval=2,
        )
        if not child.state.is_completed():
            raise RuntimeError(f"{pool} stages {group} ended {child.state.name}: see flow run {child.id}")
        results.update({stage: "done" for stage in group})
    if checkout is not None:  # every output here too, as after a run on one machine
        checkout.sync()
        checkout.dvc("pull", targets=run_order(root), remote=remote, force=True)
        logger.info(f"outputs of {checkout.branch} pulled into {root}")
    return results
