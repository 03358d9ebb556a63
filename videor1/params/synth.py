"""The `synth` section: the generated dataset (videor1.data.synth's SynthConfig) and where it goes."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.synth import SynthConfig
from .check import Section


@dataclass
class SynthParams(SynthConfig, Section):
    out: str = "data/synth"  # the data root: row paths are relative to it
