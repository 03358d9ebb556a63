"""The active profile's section of params.yaml for a stage."""

from __future__ import annotations

from pathlib import Path

import torch
import yaml

PARAMS_FILE = Path("params.yaml")


def load_params(path: Path = PARAMS_FILE) -> dict:
    params = yaml.safe_load(path.read_text())
    profile = params.get("profile")
    if profile not in params:
        raise KeyError(f"{path}: profile {profile!r} has no section (profiles: {[k for k in params if k != 'profile']})")
    return params


def stage_params(stage: str, path: Path = PARAMS_FILE) -> dict:
    params = load_params(path)
    section = params[params["profile"]]
    if stage not in section:
        raise KeyError(f"{path}: profile {params['profile']!r} has no '{stage}' section")
    return section[stage]


def set_threads(n: int) -> None:
    """Pin torch's thread count: on a shared 2-core machine more threads can be 30x slower (spec section 8)."""
    torch.set_num_threads(max(1, int(n)))


# Knobs that change how a run goes, never what it computes. Run fingerprints leave them out, so changing one
# after a crash (more threads, a longer save interval) resumes from the checkpoints instead of deleting them.
RUN_ONLY_KEYS = frozenset({"threads", "save_steps", "save_total_limit", "logging_steps", "dataloader_workers",
                           "sample_dump_steps", "media_workers"})


def result_params(section: dict) -> dict:
    """A stage's params without the run-only knobs (at any depth): what a run fingerprint should cover."""
    return {k: result_params(v) if isinstance(v, dict) else v for k, v in section.items() if k not in RUN_ONLY_KEYS}
