"""The `videor1-pipeline` flow: every DVC stage in order, GPU stages on the `gpu` pool, the rest on `cpu`.

Consecutive stages of one pool go to that pool's `videor1-stages` deployment as a
child flow run, so the UI shows the pipeline, each child run and each stage.
Retrying a failed pipeline run (UI or `prefect flow-run retry`) reruns it; stages
DVC reports as up to date are skipped, so finished work is not redone.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import networkx as nx
from prefect import flow, get_run_logger
from prefect.deployments import run_deployment

from flows.stages import stages  # absolute: Prefect loads entrypoints by file path

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
        return [_target(stage, project) for stage in ordered]


def _target(stage, project: Path) -> str:
    """How `dvc repro` run in ``project`` names the stage: `name`, or `sub/dvc.yaml:name` outside the top file."""
    dvcfile = os.path.relpath(stage.dvcfile.path, project)
    return stage.name if dvcfile == "dvc.yaml" else f"{dvcfile}:{stage.name}"


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
def pipeline(profile: str = "tiny", use_deployments: bool = True, project: str | None = None) -> dict[str, str]:
    """Run the whole pipeline on the given profile (params.yaml is switched to it if needed)."""
    logger = get_run_logger()
    root = Path(project or os.getcwd()).resolve()
    subprocess.run([sys.executable, "-m", "tasks.profile", profile], cwd=root, check=True, capture_output=True)
    results: dict[str, str] = {}
    for pool, group in plan(root):
        logger.info(f"{pool} pool: {', '.join(group)}")
        if not use_deployments:
            results.update(stages(group, pool=pool, project=str(root)))
            continue
        child = run_deployment(f"videor1-stages/{pool}", parameters={"stages": group, "pool": pool, "project": str(root)},
                               as_subflow=True, poll_interval=2)
        if not child.state.is_completed():
            raise RuntimeError(f"{pool} stages {group} ended {child.state.name}: see flow run {child.id}")
        results.update({stage: "done" for stage in group})
    return results
