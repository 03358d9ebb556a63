"""The device run (bench/device/run.sh) works on the lent H200's image as it is: proved here in a clean venv that
holds only that image's relevant packages (issue 23, item 1).

The image has Python 3.12, torch 2.11.0+cu130, transformers 5.17.0, accelerate, safetensors, numpy, pillow,
tokenizers, huggingface-hub (KINDS.md, /work/.library/device), and none of av, jiwer, rouge-score, nltk, vllm, dvc;
nothing can be installed there. The venv here: Python 3.11 (``python3.11 -m venv``, no system site packages) with
transformers 5.17.0 and the image's versions where this Python has them; torch is the 2.13.0 CPU wheel pip finds
here (2.11 is not available to this machine), numpy 2.4.6 (the image's 2.5.2 needs Python 3.12). No torchvision
either: the image has it, but ``videor1``'s torchvision fix must be harmless without it.

The venv is built once per requirements (about 40 s, 1.2 GB) under ``$VIDEOR1_DEVICE_VENV`` or
``~/.cache/videor1/device-venv-<digest of the pins and the Python>``, behind a file lock, and reused while it exists.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PYTHON = "python3.11"
IMAGE_PACKAGES = [  # the image's, pinned; transitive dependencies as pip resolves them
    "torch==2.13.0",  # the image: 2.11.0+cu130 (not installable here); this is the local CPU wheel
    "transformers==5.17.0",
    "accelerate==1.15.0",
    "safetensors==0.8.0",
    "tokenizers==0.23.2",
    "huggingface-hub==1.33.0",
    "numpy==2.4.6",  # the image: 2.5.2, which needs Python 3.12
    "pillow==12.3.0",
]
ABSENT = ["av", "jiwer", "rouge_score", "nltk", "vllm", "dvc", "torchvision"]
SIMILAR = [
    "get_rope_index",
    "forward",
    "completion_logprobs, shared prompt",
    "completion_logprobs, checkpointed",
    "generate",
]


def venv_path() -> Path:
    if os.environ.get("VIDEOR1_DEVICE_VENV"):
        return Path(os.environ["VIDEOR1_DEVICE_VENV"])
    version = subprocess.run(
        [PYTHON, "-c", "import sys; print(sys.version)"], capture_output=True, text=True, check=True
    ).stdout
    key = hashlib.sha256(json.dumps([IMAGE_PACKAGES, version]).encode()).hexdigest()[:16]
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "videor1" / f"device-venv-{key}"


@pytest.fixture(scope="session")
def image_python() -> Path:
    """The clean venv's python (built unless a complete one exists: ``.complete`` is written last)."""
    if shutil.which(PYTHON) is None:
        pytest.skip(f"{PYTHON} is not on PATH")
    root = venv_path()
    root.parent.mkdir(parents=True, exist_ok=True)
    with open(root.parent / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another session's test may be building it
        if not (root / ".complete").exists():
            shutil.rmtree(root, ignore_errors=True)
            subprocess.run([PYTHON, "-m", "venv", str(root)], check=True)
            subprocess.run(
                [
                    str(root / "bin" / "python"),
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--disable-pip-version-check",
                    "--only-binary=:all:",
                    *IMAGE_PACKAGES,
                ],
                check=True,
                env={**os.environ, "OMP_NUM_THREADS": "1"},
            )
            (root / ".complete").write_text("\n".join(IMAGE_PACKAGES) + "\n")
    return root / "bin" / "python"


def clean_env(**extra: str) -> dict:
    """This process's environment less anything that would let the main venv leak in."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "VIRTUAL_ENV"))}
    return {**env, "OMP_NUM_THREADS": "1", **extra}


@pytest.mark.slow
def test_the_device_run_works_with_only_the_images_packages(image_python, tmp_path):
    env = clean_env(PYTHONPATH=str(REPO))
    probe = subprocess.run(
        [
            str(image_python),
            "-c",
            f"""
import importlib.util, json, sys, sysconfig
import videor1, videor1.rl
out = {{"absent": [m for m in {ABSENT!r} if importlib.util.find_spec(m) is None],
       "prefix": sys.prefix, "base": sys.base_prefix, "path": sys.path,
       "videor1": videor1.__file__, "policy_loss": videor1.rl.policy_loss.__module__}}
try:
    import videor1.rl.trainer
    out["trainer"] = "imported"
except ModuleNotFoundError as e:
    out["trainer"] = e.name
print(json.dumps(out))
""",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    seen = json.loads(probe.stdout)
    assert seen["absent"] == ABSENT, f"importable in the image's venv: {sorted(set(ABSENT) - set(seen['absent']))}"
    assert seen["prefix"] != seen["base"] and not any(
        "site-packages" in p and not p.startswith(seen["prefix"]) for p in seen["path"]
    ), seen["path"]
    assert seen["videor1"].startswith(str(REPO)) and seen["policy_loss"] == "videor1.rl.algorithm"
    assert seen["trainer"] in {"av", "jiwer", "nltk", "rouge_score"}  # the trainer's own needs are not there
    assert "include-system-site-packages = false" in (image_python.parents[1] / "pyvenv.cfg").read_text()

    # the device script: no git (a git that leaves a mark), no network (proxies to a closed port)
    fake = tmp_path / "bin"
    fake.mkdir()
    (fake / "git").write_text(f"#!/bin/sh\ntouch {tmp_path / 'git-was-run'}\nexit 1\n")
    (fake / "git").chmod(0o755)
    out = tmp_path / "out"
    run = subprocess.run(
        ["bash", str(REPO / "bench" / "device" / "run.sh"), "--tiny", "--steps", "1"],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=tmp_path,
        env=clean_env(
            PYTHONPATH=str(REPO),
            OUT=str(out),
            PYTHON=str(image_python),
            PATH=f"{fake}:{os.environ['PATH']}",
            http_proxy="http://127.0.0.1:9",
            https_proxy="http://127.0.0.1:9",
            HTTP_PROXY="http://127.0.0.1:9",
            HTTPS_PROXY="http://127.0.0.1:9",
        ),
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]
    assert not (tmp_path / "git-was-run").exists(), "the device run called git"

    # what comes back from the device: at most 8 plain files, plain names, at most 2 folders down
    files = [p for p in out.rglob("*") if p.is_file()]
    assert {p.name for p in files} == {
        "gpu_step.json",
        "gpu_step.md",
        "gpu_step.log",
        "env.txt",
        "rope.json",
        "rope.log",
    }
    assert len(files) <= 8 and all(
        re.fullmatch(r"[A-Za-z0-9._-]+", p.name) and p.stat().st_size < 16 << 20 for p in files
    )
    record = json.loads((out / "gpu_step.json").read_text())
    assert record["machine"]["transformers"] == "5.17.0" and record["tiny"] and record["device"] == "cpu"
    assert record["code"]["sha256"] == code_version()["sha256"]  # the record names the tree it ran
    assert set(record["results"]) == {"rl", "sft"}
    for stage, r in record["results"].items():
        assert r["status"] == "ok", (stage, r.get("error"))
        assert r["seconds"] > 0 and r["peak_gib"] > 0 and r["plan_gib"] > 0, stage
        assert r["plan_over_measured"] == pytest.approx(r["plan_gib"] / r["peak_gib"]), stage
        assert 0.9 <= r["plan_over_measured"] <= 1.3, stage
        assert r["executed_tflop"] > r["model_tflop"] > 0, stage  # checkpointing recomputes the forward
        assert r["mfu"] == pytest.approx(r["model_tflops_per_s"] / 790.0), stage
        assert r["plan_terms_gib"], stage
    md = (out / "gpu_step.md").read_text()
    assert md.startswith("# One RL and one SFT step") and "| peak GiB | plan GiB | plan/measured |" in md
    assert re.search(r"^\| rl \| ok \|", md, re.M) and re.search(r"^\| sft \| ok \|", md, re.M)
    assert "transformers 5.17.0" in (out / "env.txt").read_text()

    # transformers 5.17 (there) and this environment's 5.19 give a Qwen2.5-VL the same positions under rope.py
    there = json.loads((out / "rope.json").read_text())
    here_out = tmp_path / "rope-here.json"
    here = subprocess.run(
        [sys.executable, "-m", "bench.device.rope_check", "--out", str(here_out)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert here.returncode == 0, here.stderr[-3000:]
    here = json.loads(here_out.read_text())
    assert there["transformers"] == "5.17.0" and here["transformers"] != there["transformers"]
    assert not there["problems"] and not here["problems"]
    for name in SIMILAR:
        assert here["cases"][name]["positions"] == there["cases"][name]["positions"], name
    assert here["cases"]["get_rope_index"]["rope_deltas"] == there["cases"]["get_rope_index"]["rope_deltas"]
    print(
        f"positions equal under transformers {here['transformers']} and {there['transformers']}; transformers' own "
        f"rule equal between them: {here['cases']['native']['positions'] == there['cases']['native']['positions']}"
    )


def code_version() -> dict:
    from bench.harness import code_version

    return code_version()


def test_the_device_command_line_is_short_and_the_readme_gives_it():
    """bench/README.md gives the exact call a session makes; its command fits the tool's 2,000 characters."""
    readme = (REPO / "bench" / "README.md").read_text()
    block = re.search(r"```json\n(\{.*?\})\n```", readme, re.S)
    assert block, "bench/README.md: the device call as a ```json block"
    call = json.loads(block.group(1))
    assert len(call["command"]) < 2000 and "bench/device/run.sh" in call["command"]
    assert 1 <= call["timeout_s"] <= 600 and call.get("carry", []) == []
    assert subprocess.run(["bash", "-n", str(REPO / "bench" / "device" / "run.sh")]).returncode == 0
