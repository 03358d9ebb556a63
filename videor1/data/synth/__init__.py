"""A procedurally generated image+video QA set whose answers are known (the tiny profile's data)."""

from .broken import BROKEN_CASES, write_broken
from .build import BENCHMARKS, EvalSet, SynthConfig, data_source, generate, splits
from .families import FAMILIES, IMAGE, ORDER_DEPENDENT, ORDER_INDEPENDENT, Example, SynthSpec

__all__ = [
    "BROKEN_CASES",
    "BENCHMARKS",
    "FAMILIES",
    "IMAGE",
    "ORDER_DEPENDENT",
    "ORDER_INDEPENDENT",
    "EvalSet",
    "Example",
    "SynthConfig",
    "SynthSpec",
    "data_source",
    "generate",
    "splits",
    "write_broken",
]
