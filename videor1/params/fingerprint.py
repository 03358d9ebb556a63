"""What a run fingerprint covers: a stage's config without the knobs that change how a run goes, never what it
computes. Changing one of those after a crash (more threads, a longer save interval) then resumes from the
checkpoints instead of deleting them."""

from __future__ import annotations

import dataclasses

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


def result_params(config) -> dict:
    """``config`` (a section's dataclass, or a mapping) as plain data, without the run-only knobs at any depth."""
    if dataclasses.is_dataclass(config):
        config = {f.name: getattr(config, f.name) for f in dataclasses.fields(config)}
    if isinstance(config, dict):
        return {k: result_params(v) for k, v in config.items() if k not in RUN_ONLY_KEYS}
    if isinstance(config, list | tuple):
        return [result_params(v) for v in config]
    return config
