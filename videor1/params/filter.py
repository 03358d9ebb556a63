"""The `filter` section: videor1.cot.filter's FilterConfig, and how many examples per rule the metrics show."""

from __future__ import annotations

from dataclasses import dataclass

from ..cot.filter import FilterConfig
from .check import Section, at_least


@dataclass(frozen=True)
class FilterParams(FilterConfig, Section):
    examples: int = 3  # examples per rule in metrics/filter.json

    def __post_init__(self):
        super().__post_init__()
        at_least(self, 0, "examples")
