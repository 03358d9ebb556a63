"""Shared fixtures: generated videos (good and hostile), a small synthetic dataset, a tiny tokenizer."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import yaml

import videor1  # noqa: F401  (makes torchvision importable before anything else imports it)

torch.set_num_threads(1)

SAMPLE_MP4 = Path(__file__).resolve().parents[1].parent / "shared" / "media" / "sample.mp4"


def frame_pattern(i: int, h: int, w: int) -> np.ndarray:
    """A frame that differs visibly from its neighbours: index-coded colour plus a moving bar."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (i * 37) % 256
    img[..., 2] = (i * 11) % 256
    img[:, (i * 3) % w, 1] = 255
    return img


def encode(
    path: Path,
    n: int,
    *,
    fps: int = 25,
    gop: int = 12,
    w: int = 96,
    h: int = 64,
    bframes: int = 2,
    movflags: str | None = None,
) -> Path:
    with av.open(str(path), "w", options={"movflags": movflags} if movflags else {}) as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"g": str(gop), "bf": str(bframes), "preset": "veryfast", "threads": "1"}
        for i in range(n):
            for p in s.encode(av.VideoFrame.from_ndarray(frame_pattern(i, h, w), format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def cut_with_edit_list(src: Path, dst: Path, hidden_frames: int) -> Path:
    """Remux so the first frames get negative timestamps, as `ffmpeg -ss T -c copy` does.

    The MP4 muxer then writes an edit list hiding them: the container still
    counts them, a sequential decode does not output them.
    """
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        ins = inp.streams.video[0]
        outs = out.add_stream_from_template(ins)
        step = int(round(1 / (ins.average_rate * ins.time_base)))
        for packet in inp.demux(ins):
            if packet.dts is None:
                continue
            packet.pts -= hidden_frames * step
            packet.dts -= hidden_frames * step
            packet.stream = outs
            out.mux(packet)
    return dst


@pytest.fixture(scope="session")
def videos(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("videos")
    v = {
        "short_gop": encode(d / "short_gop.mp4", 120, gop=12),
        "long_gop": encode(d / "long_gop.mp4", 200, gop=300),
        "one_frame": encode(d / "one_frame.mp4", 1),
        "wide_300_1": encode(d / "wide.mp4", 8, w=600, h=2, bframes=0),
        "faststart": encode(d / "faststart.mp4", 120, gop=30, movflags="faststart"),
    }
    v["edit_list_cut"] = cut_with_edit_list(v["short_gop"], d / "cut.mp4", hidden_frames=17)
    (d / "empty.mp4").write_bytes(b"")
    v["zero_byte"] = d / "empty.mp4"
    data = v["short_gop"].read_bytes()
    (d / "truncated.mp4").write_bytes(data[: len(data) // 2])  # moov atom at the end: lost
    v["truncated_moov_lost"] = d / "truncated.mp4"
    data = v["faststart"].read_bytes()
    (d / "truncated_fs.mp4").write_bytes(data[: int(len(data) * 0.6)])  # index intact, frames missing
    v["truncated_frames_lost"] = d / "truncated_fs.mp4"
    (d / "notes.mp4").write_text("this is not a video\n" * 50)
    v["not_a_video"] = d / "notes.mp4"
    return v


@pytest.fixture(scope="session")
def long_clip(tmp_path_factory) -> Path:
    """183 frames at 5 fps (36.6 s): 16 frames sampled at 2 fps are 4.575 s per temporal patch, not a whole number,
    and bf16 holds it as 4.5625, which moves the last temporal patch's M-RoPE id (64 -> 63 at 2 tokens per second)."""
    return encode(tmp_path_factory.mktemp("long_clip") / "long.mp4", 183, fps=5, w=56, h=56)


@pytest.fixture(scope="session")
def synth_data(tmp_path_factory) -> Path:
    """A small synthetic dataset: train.json, six eval files (4 rows each), media."""
    from videor1.data.synth import SynthConfig, generate
    from videor1.data.synth.families import SynthSpec

    root = tmp_path_factory.mktemp("synth") / "synth"
    # the tiny profile's clips: 4 states held 5 frames at 4 fps (5 s), sampled to 8 frames at 1.6 fps: 1.25 s per
    # temporal patch, so temporal ids (t · 1.25 · 2 = 0, 2, 5, 7) depend on exact, not whole, seconds
    generate(
        root,
        SynthConfig(
            seed=0, train_video_rows=12, train_image_rows=10, eval_rows_per_benchmark=4, spec=SynthSpec(hold=5)
        ),
    )
    return root


@pytest.fixture(scope="session")
def tiny_model_dir(synth_data, tmp_path_factory) -> Path:
    """A saved tiny random Qwen2.5-VL (tokenizer trained on the synthetic prompts) with its processor."""
    import json

    from videor1.models import TinyModelConfig, build_processor, build_tiny_model, save_model_dir, train_bpe_tokenizer
    from videor1.prompts import prompt_text

    rows = json.loads((synth_data / "train.json").read_text())
    tokenizer = train_bpe_tokenizer([prompt_text(r) for r in rows] + [r["solution"] for r in rows], 400)
    model = build_tiny_model(TinyModelConfig(seed=0), tokenizer)
    processor = build_processor(
        tokenizer, image_min_pixels=3136, image_max_pixels=7056, video_min_pixels=3136, video_max_pixels=3136
    )
    target = tmp_path_factory.mktemp("models") / "base"
    save_model_dir(model, processor, target)
    return target


@pytest.fixture(scope="session")
def family_model_dirs(tiny_model_dir, tmp_path_factory) -> dict[str, Path]:
    """A saved tiny model of each family (videor1/models/families/), from the suite's tokenizer, with the tiny
    profile's pixel bounds (each family's frames at their natural size: 4 merged tokens per temporal patch)."""
    from videor1.models import (
        FAMILIES,
        TinyModelConfig,
        build_processor,
        build_tiny_model,
        load_processor,
        save_model_dir,
    )

    tokenizer = load_processor(tiny_model_dir).tokenizer
    root = tmp_path_factory.mktemp("families")
    for name in FAMILIES:
        model = build_tiny_model(TinyModelConfig(seed=0), tokenizer, name)
        save_model_dir(model, build_processor(tokenizer, family=name, **FAMILY_PIXELS), root / name)
    return {name: root / name for name in FAMILIES}


def redraw(model, seed: int) -> None:
    """Unit-variance fan-in weights: a model that continues each prompt differently (a 0.02-std one says one
    newline to everything), so a differing pixel, position or weight shows in its greedy tokens."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() >= 2:
                p.normal_(0, p.shape[-1] ** -0.5, generator=g)


FAMILY_PIXELS = dict(image_min_pixels=3136, image_max_pixels=9216, video_min_pixels=3136, video_max_pixels=4096)


REPO = Path(__file__).resolve().parents[1]
PROJECT_FILES = [
    "dvc.yaml",
    "params.yaml",
    "tasks",
    "videor1",
    "flows",
    "prefect.yaml",
    "scripts",
    ".dvcignore",
    ".gitignore",
]


def torchrun(nproc: int, script: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            str(REPO / "tests" / "dist" / script),
            *args,
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-4000:]


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_two_nodes(script: str, *args: str) -> None:
    """Two torchrun agents on this machine as two nodes of one process each (c10d rendezvous on loopback): the
    README's multi-node launch, with 127.0.0.1 for the head node's address."""
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    port = free_port()
    agents = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--nnodes",
                "2",
                "--node-rank",
                str(rank),
                "--nproc-per-node",
                "1",
                "--rdzv-backend",
                "c10d",
                "--rdzv-endpoint",
                f"127.0.0.1:{port}",
                str(REPO / "tests" / "dist" / script),
                *args,
            ],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (0, 1)
    ]
    errors = [agent.communicate(timeout=600)[1] for agent in agents]
    assert all(agent.returncode == 0 for agent in agents), errors[0][-3000:] + errors[1][-3000:]


def tree_digest(root: Path) -> str:
    """One hash over a directory's relative paths and bytes: equal trees, equal digests."""
    import hashlib

    h = hashlib.sha256()
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(root)).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def sh(cwd: Path, *args: str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """Run a command in a project copy with this interpreter's environment first on PATH."""
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(cwd),
        "DVC_NO_ANALYTICS": "1",
        **(env or {}),
    }
    out = subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)
    if check and out.returncode != 0:
        raise AssertionError(f"{args} failed:\n{out.stdout}\n{out.stderr}")
    return out


def new_project(where: Path) -> Path:
    """A fresh copy of the project (git + DVC initialised) with a small synthetic set and short training."""
    for name in PROJECT_FILES:
        src = REPO / name
        (shutil.copytree if src.is_dir() else shutil.copy)(src, where / name)
    params = yaml.safe_load((where / "params.yaml").read_text())
    params["tiny"]["synth"].update(train_video_rows=12, train_image_rows=10, eval_rows_per_benchmark=2)
    params["tiny"]["sft"]["train"].update(max_steps=8, save_steps=4)
    params["tiny"]["rl"]["train"].update(steps=4, save_steps=2)
    (where / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    sh(where, "git", "init", "-q")
    sh(where, sys.executable, "-m", "dvc", "init", "-q")
    sh(where, sys.executable, "-m", "dvc", "config", "core.analytics", "false")
    return where


def kill_when(proc: subprocess.Popen, ready, *, within: float, group: bool = False, poll: float = 0.01) -> None:
    """SIGKILL ``proc`` (with ``group``: its whole process group) as soon as ``ready()`` holds, once it has exited,
    or after ``within`` seconds, whichever comes first; then reap it, within a minute (SIGKILL is never ignored)."""
    import signal
    import time

    deadline = time.monotonic() + within
    while time.monotonic() < deadline and proc.poll() is None and not ready():
        time.sleep(poll)
    if group:
        with contextlib.suppress(ProcessLookupError):  # the group has already left
            os.killpg(proc.pid, signal.SIGKILL)
    else:
        proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)


@pytest.fixture
def project(tmp_path) -> Path:
    return new_project(tmp_path)


def shared_project(tmp_path_factory, name: str, build) -> Path:
    """A project state (or any folder of results) built once per test run and shared by the pytest-xdist workers:
    the first worker to ask builds it (``build(path)``) under a file lock, the others wait for it. A module-scoped
    fixture is otherwise built once per worker that runs one of its tests: three torchrun launches for the same
    results. Tests copy it (``copy_project``) or read it, never change it."""
    from filelock import FileLock

    # each worker's basetemp is <run>/popen-gwN: the run's directory is their common parent
    root = tmp_path_factory.getbasetemp()
    root = root.parent if os.environ.get("PYTEST_XDIST_WORKER") else root
    template, done = root / f"template-{name}", root / f"template-{name}.done"
    with FileLock(str(root / f"template-{name}.lock")):
        if not done.exists():
            shutil.rmtree(template, ignore_errors=True)  # a build cut off by a failure starts over
            template.mkdir()
            build(template)
            done.touch()
    return template


def copy_project(template: Path, where: Path) -> Path:
    shutil.copytree(template, where, symlinks=True, dirs_exist_ok=True)
    return where


@pytest.fixture(scope="session")
def collected_project(tmp_path_factory) -> Path:
    """The project after `dvc repro base_model collect` (synth, the tiny model, the collected rows)."""

    def build(where: Path) -> None:
        new_project(where)
        sh(where, sys.executable, "-m", "dvc", "repro", "base_model", "collect")

    return shared_project(tmp_path_factory, "collected", build)


@pytest.fixture(scope="session")
def filtered_project(tmp_path_factory, collected_project) -> Path:
    """... and after `dvc repro filter` (the scripted teacher's CoT, filtered): what sft trains on."""

    def build(where: Path) -> None:
        copy_project(collected_project, where)
        sh(where, sys.executable, "-m", "dvc", "repro", "filter")

    return shared_project(tmp_path_factory, "filtered", build)


GIT = ["git", "-c", "user.name=videor1-tests", "-c", "user.email=tests@videor1"]


def spanning_setup(project: Path, where: Path, remote_url: str, **remote_options: str) -> tuple[Path, Path]:
    """The project as a team shares it: committed with a default DVC remote (every pull re-hashes what it
    downloads: ``verify``), a bare git remote, and two clones (say a CPU and a GPU machine), each with its own DVC
    cache. Returns the clones."""
    dvc = [sys.executable, "-m", "dvc"]
    sh(project, *dvc, "remote", "add", "--force", "-d", "storage", remote_url)
    for key, value in {"verify": "true", **remote_options}.items():
        sh(project, *dvc, "remote", "modify", "storage", key, value)
    sh(project, *GIT, "add", "-A")
    sh(project, *GIT, "commit", "-qm", "the project")
    sh(where, "git", "clone", "-q", "--bare", str(project), "remote.git")
    clones = []
    for name in ("cpu-machine", "gpu-machine"):
        sh(where, "git", "clone", "-q", "remote.git", name)
        sh(where / name, "git", "config", "user.name", "videor1-tests")
        sh(where / name, "git", "config", "user.email", "tests@videor1")
        clones.append(where / name)
    return clones[0], clones[1]


def pytest_collection_modifyitems(items) -> None:
    """Start the two longest groups on different pytest-xdist workers. `--dist worksteal` hands each worker a
    contiguous share of this list and lets an idle one take pending tests from the back of another's queue: so the
    first half begins with the Prefect runs then the other slow tests, the second with the DVC pipeline runs, and
    quick tests fill the rest of each half (file order is kept within each group)."""

    def group(item) -> str:
        if item.get_closest_marker("slow") is None:
            return "quick"
        return {"test_orchestration.py": "prefect", "test_pipeline.py": "pipeline"}.get(item.path.name, "slow")

    by_group = {name: [i for i in items if group(i) == name] for name in ("prefect", "slow", "pipeline", "quick")}
    first = by_group["prefect"] + by_group["slow"]
    fill = max(0, len(items) // 2 - len(first))
    items[:] = first + by_group["quick"][:fill] + by_group["pipeline"] + by_group["quick"][fill:]


def pytest_xdist_auto_num_workers(config) -> int:
    """`-n auto`: one worker per core plus one (at most 4). The Prefect run across two machines spends most of its
    five minutes waiting (servers starting, three 30 s heartbeats before a lost worker's run is crashed); the extra
    worker keeps the cores busy meanwhile. Every stage a test runs pins its own threads (params `threads: 1`)."""
    return min(4, (os.cpu_count() or 1) + 1)
