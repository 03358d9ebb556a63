"""What every benchmark records beside its numbers: the code measured and the machine it ran on."""

from __future__ import annotations

import os
import platform
import subprocess
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]


def code_version() -> dict:
    """The commit benchmarked, and whether videor1/ had uncommitted changes."""

    def git(*cmd: str) -> str:
        return subprocess.run(["git", *cmd], cwd=REPO, capture_output=True, text=True).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "videor1_dirty": bool(git("status", "--porcelain", "videor1"))}


def machine_info(**versions: str) -> dict:
    """CPU, platform, Python and torch, plus the package versions a benchmark names."""
    return {
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0)),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        **versions,
    }
