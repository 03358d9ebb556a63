"""The model families: what differs between Qwen2.5-VL, Qwen3-VL and Qwen3.5, one module each.

A family is a property of the model: ``base_model.family`` picks the tiny model's, and every later stage reads it
from the model directory's ``config.json`` (``family_of``), so a paper profile's ``base_model.path`` may name any
family's checkpoint.
"""

from __future__ import annotations

import json
from pathlib import Path

from .base import ModelFamily
from .qwen2_5_vl import QWEN2_5_VL
from .qwen3_5 import QWEN3_5
from .qwen3_vl import QWEN3_VL, patch_times

FAMILIES: dict[str, ModelFamily] = {f.name: f for f in (QWEN2_5_VL, QWEN3_VL, QWEN3_5)}
BY_MODEL_TYPE = {t: f for f in FAMILIES.values() for t in f.model_types}


def get_family(name: str) -> ModelFamily:
    if name not in FAMILIES:
        raise ValueError(f"unknown model family {name!r}: one of {', '.join(FAMILIES)}")
    return FAMILIES[name]


def family_of(model) -> ModelFamily:
    """The family of a model directory (its config.json), a loaded model or a transformers config."""
    if isinstance(model, str | Path):
        config = Path(model) / "config.json"
        if not config.is_file():
            raise FileNotFoundError(f"model directory {model} has no config.json")
        model_type = json.loads(config.read_text()).get("model_type")
        where = str(config)
    else:
        config = getattr(model, "config", model)
        model_type, where = getattr(config, "model_type", None), type(model).__name__
    if model_type not in BY_MODEL_TYPE:
        known = ", ".join(sorted(BY_MODEL_TYPE))
        raise ValueError(f"{where}: model_type {model_type!r} is not a supported family ({known})")
    return BY_MODEL_TYPE[model_type]


def input_family(processor) -> ModelFamily:
    """The family whose input rules a processor follows (Qwen3.5 uses Qwen3-VL's processor and rules)."""
    for family in FAMILIES.values():
        if type(processor) is family.processor_class():
            return family
    raise ValueError(f"{type(processor).__name__} is not the processor of a supported family ({', '.join(FAMILIES)})")


__all__ = ["FAMILIES", "ModelFamily", "QWEN2_5_VL", "QWEN3_5", "QWEN3_VL", "family_of", "get_family", "input_family", "patch_times"]
