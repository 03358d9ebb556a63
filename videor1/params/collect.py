"""The `collect` section: videor1.data.collect's CollectConfig as params.yaml writes it."""

from __future__ import annotations

from dataclasses import dataclass

from ..data.collect import CollectConfig
from .check import ConfigError, Section, at_least, between


@dataclass
class CollectParams(CollectConfig, Section):
    def __post_init__(self):
        if not self.inputs:
            raise ConfigError("inputs", "must list at least one row file and its media root")
        between(self, 0.0, 1.0, "default_weight")
        at_least(self, 1, "workers")
