"""Per-benchmark summary of scored predictions (spec section 6).

Accuracy is the mean score over non-regression rows, MRA the mean over regression
rows. VSI-Bench reports one score: the mean of its task scores, a task being the
rows that share ``task_field`` (the data source, or the question type).

Rows without an output (their media could not be read) are never scored as
wrong silently: they are listed, and two headline scores are given, over the
rows that have an output and with the missing rows counted as wrong. Rows that
can never score (a numerical or regression solution that is not a number) are a
data error: listed as ``unscorable``, never scored.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field

from ..rewards.answer import unscorable
from .scoring import score_prediction


def benchmark_key(name: str) -> str:
    """'VSI-Bench', 'vsi_bench' and 'vsibench' name the same benchmark."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


TASK_AVERAGED = frozenset({"vsibench"})


@dataclass
class BenchmarkSummary:
    benchmark: str
    rows: int
    scored: int
    accuracy: float | None  # mean over scored non-regression rows, in [0, 1]
    mra: float | None  # mean over scored regression rows
    score: float | None  # the headline: task mean for task-averaged benchmarks, else the mean over scored rows
    score_failed_as_wrong: float | None  # the same with rows that have no output counted as 0
    tasks: dict[str, float] = field(default_factory=dict)  # per-task mean, for task-averaged benchmarks
    failed: list[dict] = field(default_factory=list)  # {problem_id, error} of rows with no output
    unscorable: list[dict] = field(default_factory=list)  # {problem_id, error} of rows whose solution cannot score

    def to_dict(self) -> dict:
        return asdict(self)


def _mean(values: list[float]) -> float | None:
    return sum(values) / len(values) if values else None


def summarize(
    benchmark: str,
    predictions: Iterable[Mapping],
    *,
    task_field: str = "data_source",
    task_averaged: bool | None = None,
    mra: str = "exact",
) -> BenchmarkSummary:
    """Summarize the prediction rows of one benchmark (and one model and frame count).

    Each row needs ``problem_type`` and ``solution``, and either ``output`` or ``error``.
    """
    if task_averaged is None:
        task_averaged = benchmark_key(benchmark) in TASK_AVERAGED
    mra_rule = mra
    acc, mra, failed, bad = [], [], [], []
    by_task: dict[str, list[float | None]] = defaultdict(list)
    rows = 0
    for row in predictions:
        reason = unscorable(row.get("solution", ""), row.get("problem_type", ""))
        if reason:
            bad.append({"problem_id": row.get("problem_id"), "error": reason})
            continue
        rows += 1
        task = str(row.get(task_field, ""))
        output = row.get("output")
        if output is None:
            failed.append({"problem_id": row.get("problem_id"), "error": row.get("error", "no output")})
            by_task[task].append(None)
            continue
        s = score_prediction(output, row.get("solution", ""), row.get("problem_type", ""), mra=mra_rule)
        (mra if row.get("problem_type") == "regression" else acc).append(s)
        by_task[task].append(s)
    scored = len(acc) + len(mra)
    tasks = {t: _mean([s for s in v if s is not None]) for t, v in sorted(by_task.items())} if task_averaged else {}
    if task_averaged:
        known = [v for v in tasks.values() if v is not None]
        score = _mean(known)
        score_all = _mean([sum(s or 0.0 for s in v) / len(v) for v in by_task.values()])
    else:
        score = _mean(acc + mra)
        score_all = (sum(acc) + sum(mra)) / rows if rows else None
    return BenchmarkSummary(
        benchmark=benchmark,
        rows=rows,
        scored=scored,
        accuracy=_mean(acc),
        mra=_mean(mra),
        score=score,
        score_failed_as_wrong=score_all,
        tasks={t: v for t, v in tasks.items() if v is not None},
        failed=failed,
        unscorable=bad,
    )
