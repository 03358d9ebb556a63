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
        raise KeyError(
            f"{path}: profile {profile!r} has no section (profiles: {[k for k in params if k != 'profile']})"
        )
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
RUN_ONLY_KEYS = frozenset(
    {
        "threads",
        "save_steps",
        "save_total_limit",
        "logging_steps",
        "dataloader_workers",
        "sample_dump_steps",
        "media_workers",
    }
)


def result_params(section: dict) -> dict:
    """A stage's params without the run-only knobs (at any depth): what a run fingerprint should cover."""
    return {k: result_params(v) if isinstance(v, dict) else v for k, v in section.items() if k not in RUN_ONLY_KEYS}


def with_overrides(section: dict, assignments: list[str]) -> dict:
    """A copy of a params section with ``a.b=value`` assignments applied (values read as YAML: ``false``, ``3``,
    ``1e-4``), for a run that differs from its section in a few knobs (the toy experiment's seeds and methods)."""
    import copy

    out = copy.deepcopy(section)
    for assignment in assignments:
        key, sep, value = assignment.partition("=")
        if not sep or not key:
            raise ValueError(f"override {assignment!r} is not key=value")
        target, parts = out, key.split(".")
        for part in parts[:-1]:
            if not isinstance(target.get(part), dict):
                raise KeyError(f"override {assignment!r}: {part!r} is not a section")
            target = target[part]
        if parts[-1] not in target:
            raise KeyError(f"override {assignment!r}: no knob {parts[-1]!r} there")
        target[parts[-1]] = _scalar(value)
    return out


def _scalar(text: str):
    """YAML's reading of a value, except that ``1e-4`` is a float (YAML 1.1, PyYAML's dialect, reads it as a string)."""
    value = yaml.safe_load(text)
    if isinstance(value, str):
        try:
            return float(value)
        except ValueError:
            return value
    return value
