"""Per-source sampling: the balancing step of the collect stage."""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass

import polars as pl


@dataclass(frozen=True)
class SourceRule:
    """Keep ``weight`` (0..1) of a source's valid rows, then at most ``cap`` of them."""

    pattern: str  # fnmatch pattern on data_source, e.g. "LLaVA-Video-178K/*"
    weight: float = 1.0
    cap: int | None = None

    def __post_init__(self):
        if not 0.0 <= self.weight <= 1.0:
            raise ValueError(f"source weight for {self.pattern!r} must be in [0, 1], got {self.weight}")
        if self.cap is not None and self.cap < 0:
            raise ValueError(f"source cap for {self.pattern!r} must be >= 0, got {self.cap}")


def rule_for(source: str, rules: list[SourceRule], default: SourceRule) -> SourceRule:
    return next((r for r in rules if fnmatch.fnmatchcase(source, r.pattern)), default)


def balance(table: pl.DataFrame, rules: list[SourceRule], *, seed: int, default_weight: float = 1.0) -> tuple[pl.DataFrame, dict]:
    """Sample each data_source by the first rule whose pattern matches it; return kept rows and per-source counts.

    Sampling is without replacement and deterministic for a seed; kept rows stay in input order.
    """
    default = SourceRule("*", default_weight)
    kept, stats = [], {}
    for (source,), group in table.group_by("data_source", maintain_order=True):
        rule = rule_for(source, rules, default)
        n = round(rule.weight * group.height)
        if rule.cap is not None:
            n = min(n, rule.cap)
        sample = group if n == group.height else group.sample(n=n, seed=seed, shuffle=False)
        kept.append(sample)
        stats[source] = {"available": group.height, "kept": n, "weight": rule.weight, "cap": rule.cap}
    out = pl.concat(kept) if kept else table.clear()
    order = table.select("problem_id").with_row_index("_pos")
    out = out.join(order, on="problem_id", how="left").sort("_pos").drop("_pos")
    return out, dict(sorted(stats.items()))
