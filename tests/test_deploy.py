"""The cluster deployment files checked as far as this machine allows (no cluster, no image registry, no Docker
daemon): the Kubernetes job template of the `gpu` pool against Prefect's own validation and worker classes."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
TEMPLATE = REPO / "deploy" / "k8s" / "gpu-job-template.json"


def test_the_gpu_job_template_passes_the_servers_validation_and_keeps_prefects_defaults():
    from prefect.server.schemas.actions import WorkPoolCreate
    from prefect_kubernetes.worker import KubernetesWorker

    template = json.loads(TEMPLATE.read_text())
    WorkPoolCreate(name="gpu", type="kubernetes", base_job_template=template)  # what `prefect work-pool create` checks
    default = KubernetesWorker.get_default_base_job_template()
    assert set(default["job_configuration"]) <= set(template["job_configuration"])
    assert set(default["variables"]["properties"]) <= set(template["variables"]["properties"])


def test_the_gpu_job_template_renders_a_job_with_gpus_the_remotes_secret_and_shared_memory():
    from prefect_kubernetes.worker import KubernetesWorkerJobConfiguration

    template = json.loads(TEMPLATE.read_text())
    values = {"gpus": 4, "image": "registry.example/videor1-gpu:0.1.0", "remote_secret": "my-s3"}
    # client: the template refers to no Prefect blocks or variables, so nothing is looked up on a server
    config = asyncio.run(KubernetesWorkerJobConfiguration.from_template_and_values(template, values, client=object()))
    pod = config.job_manifest["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["image"] == "registry.example/videor1-gpu:0.1.0"
    assert (
        container["resources"]["limits"]["nvidia.com/gpu"] == 4
        and container["resources"]["requests"]["nvidia.com/gpu"] == 4
    )
    assert container["envFrom"] == [{"secretRef": {"name": "my-s3", "optional": False}}]
    assert {"name": "dshm", "mountPath": "/dev/shm"} in container["volumeMounts"]
    assert pod["volumes"][0]["emptyDir"] == {"medium": "Memory", "sizeLimit": "64Gi"}
    assert pod["restartPolicy"] == "Never" and config.job_manifest["spec"]["backoffLimit"] == 0
    assert not any("SECRET" in str(e).upper() or "PASSWORD" in str(e).upper() for e in container.get("env") or [])
