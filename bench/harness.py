"""What every benchmark shares: interleaved timing, peak memory, the pipeline's own outputs as inputs, the code and
machine measured, and one writer for ``bench/results/<name>.json`` and ``.md``.

Only the standard library at import time (torch, yaml and videor1 inside the functions that need them):
``bench/gpu_step.py`` uses this module on the lent GPU's image, which has no git and little of the pipeline.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "bench" / "results"
# The code measured, named by a digest of these files: no git binary is run (the device machine's copy has none)
CODE_FILES = ("videor1/**/*.py", "videor1/configs/*.json", "tasks/*.py", "bench/**/*.py", "bench/device/*.sh")
# What a copy of the project needs to run its pipeline (as tests/conftest.py's project fixture copies it)
PROJECT_FILES = ("dvc.yaml", "params.yaml", "tasks", "videor1", "flows", "prefect.yaml", "scripts", ".dvcignore")


@dataclass
class Timing:
    """Wall seconds of every timed run of one case, and what each run returned."""

    seconds: list[float] = field(default_factory=list)
    results: list = field(default_factory=list)

    @property
    def median(self) -> float:
        return statistics.median(self.seconds)

    @property
    def best(self) -> float:
        return min(self.seconds)

    def summary(self) -> dict:
        return {"seconds": [round(s, 4) for s in self.seconds], "median_s": round(self.median, 4)}


def interleave(
    cases: dict[str, Callable[[], object]],
    repeats: int,
    warmup: int = 1,
    before: Callable[[str], None] | None = None,
) -> dict[str, Timing]:
    """Time every case ``repeats`` times, interleaved: after ``warmup`` untimed rounds, each round runs every case
    once, in order and then in reverse (A B, B A, ...), so drift in a shared machine's load hits all cases alike and
    their ratios stay fair. ``before(name)`` runs untimed before each run (to clear outputs, say)."""
    names, timings = list(cases), {name: Timing() for name in cases}
    for i in range(-warmup, repeats):
        for name in names if i % 2 == 0 else names[::-1]:
            if before is not None:
                before(name)
            start = time.perf_counter()
            out = cases[name]()
            seconds = time.perf_counter() - start
            if i >= 0:
                timings[name].seconds.append(seconds)
                timings[name].results.append(out)
            print(f"{'warm-up' if i < 0 else f'run {i + 1}'} {name}: {seconds:.3f} s", flush=True)
    return timings


def speedups(timings: dict[str, Timing], baseline: str) -> dict[str, float]:
    """How many times faster than ``baseline`` each case runs, from the medians."""
    return {name: timings[baseline].median / t.median for name, t in timings.items()}


def tensor_peak(fn: Callable[[], object], held: Iterable = ()) -> int:
    """Peak bytes of live tensor storage while ``fn`` runs, on any device (``videor1.plan.PeakTensorMemory``);
    ``held``: tensors alive before (weights), counted from the start."""
    from videor1.plan import PeakTensorMemory

    with PeakTensorMemory(held) as memory:
        fn()
    return memory.peak


def in_fresh_process(fn: Callable, *args):
    """``fn(*args)`` in a fresh, spawned Python process, so its peak resident memory is that call's alone."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(1) as pool:
        return pool.apply(fn, args)


def arguments(doc: str) -> argparse.ArgumentParser:
    """A benchmark's command line: its docstring's first paragraph as the description, and ``--out``."""
    ap = argparse.ArgumentParser(description=doc.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=RESULTS, help="folder for the results (<name>.json and .md)")
    return ap


def params(profile: str = "tiny") -> dict:
    """A profile's section of the repository's params.yaml."""
    import yaml

    return yaml.safe_load((REPO / "params.yaml").read_text())[profile]


def project(*stages: str) -> Path:
    """A copy of this project where ``dvc repro STAGES`` has run, so a benchmark reads the pipeline's own data and
    models. Kept under ``~/.cache/videor1/bench-project-<digest of PROJECT_FILES>`` and reused while code and
    params are unchanged (a repro of stages already run takes a second or two). ``VIDEOR1_BENCH_PROJECT``: a project
    of your own where these stages have run, used as it is."""
    if os.environ.get("VIDEOR1_BENCH_PROJECT"):
        return Path(os.environ["VIDEOR1_BENCH_PROJECT"]).resolve()
    files = _files(PROJECT_FILES)
    cache = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "videor1"
    root = cache / f"bench-project-{_digest(files)[:16]}"
    cache.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(root),
        "DVC_NO_ANALYTICS": "1",
        "OMP_NUM_THREADS": "1",
    }
    with open(cache / f"{root.name}.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another benchmark may be building it
        if not (root / ".dvc").is_dir():
            shutil.rmtree(root, ignore_errors=True)
            for path in files:
                (root / path.relative_to(REPO)).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(path, root / path.relative_to(REPO))
            subprocess.run(["git", "init", "-q"], cwd=root, check=True)
            subprocess.run([sys.executable, "-m", "dvc", "init", "-q"], cwd=root, env=env, check=True)
        subprocess.run([sys.executable, "-m", "dvc", "repro", "-q", *stages], cwd=root, env=env, check=True)
    return root


def _files(patterns: Iterable[str]) -> list[Path]:
    """Files under REPO matching the patterns (a plain name: that file, or everything under that folder)."""
    found = set()
    for pattern in patterns:
        paths = [REPO / pattern] if (REPO / pattern).exists() else REPO.glob(pattern)
        for path in paths:
            found.update(path.rglob("*") if path.is_dir() else [path])
    return sorted(p for p in found if p.is_file() and "__pycache__" not in p.parts)


def _digest(files: list[Path]) -> str:
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes() + b"\0")
    return digest.hexdigest()


def code_version() -> dict:
    """The code measured: a digest of ``CODE_FILES`` (relative path and bytes, sorted) and the commit, read from
    ``.git`` where there is one (no git binary is run)."""
    files = _files(CODE_FILES)
    return {"sha256": _digest(files), "files": len(files), "commit": read_commit(REPO / ".git")}


def read_commit(git: Path) -> str | None:
    try:
        head = (git / "HEAD").read_text().strip()
        if not head.startswith("ref: "):
            return head
        ref = head[5:]
        if (git / ref).is_file():
            return (git / ref).read_text().strip()
        for line in (git / "packed-refs").read_text().splitlines():
            if line.endswith(" " + ref):
                return line.split()[0]
    except OSError:  # no .git (the device machine), or a worktree's .git file
        pass
    return None


def machine_info(**versions) -> dict:
    """CPUs, platform, Python and torch, plus what a benchmark names (package versions, the GPU)."""
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        **versions,
    }


def cell(value) -> str:
    if isinstance(value, bool):
        return "yes" if value else "NO"
    if isinstance(value, float):
        return f"{value:#.3g}" if abs(value) < 100 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "" if value is None else str(value)


def table(rows: list[dict]) -> list[str]:
    """Markdown table lines from dicts with the same keys (the header)."""
    head = list(rows[0])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    return lines + ["| " + " | ".join(cell(row[k]) for k in head) + " |" for row in rows]


def write(name: str, record: dict, markdown: list[str], out: Path = RESULTS, **versions) -> str:
    """The one result writer: ``out/<name>.json`` (the record, with the code and machine measured unless it
    names them) and ``out/<name>.md`` (the title, a line naming that code and machine, then the other lines).
    Returns the Markdown."""
    record = {**record}
    record.setdefault("code", code_version())
    record.setdefault("machine", machine_info(**versions))
    code, m = record["code"], record["machine"]
    stamp = (
        f"Code sha256 `{code['sha256'][:12]}` (commit `{(code['commit'] or 'unknown')[:10]}`); "
        f"{m.get('cpu_affinity', m.get('cpu_count'))} CPUs, {m['platform']}, Python {m['python']}, torch {m['torch']}"
        + "".join(f", {k} {v}" for k, v in versions.items())
        + "."
    )
    text = "\n".join([markdown[0], "", stamp, *markdown[1:]]) + "\n"
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{name}.json").write_text(json.dumps(record, indent=1, default=str) + "\n", encoding="utf-8")
    (out / f"{name}.md").write_text(text, encoding="utf-8")
    return text
