"""The toy reproduction's analysis: Video-R1's four observations (spec section 7) judged over seeds.

Every verdict follows a rule fixed before the runs (docs/toy-preregistration.md); the functions here only
apply it to the runs' curves (rl.csv) and greedy evals (eval.json), so the report's numbers are the metrics
files' numbers.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from .figures import read_curve, save_figure, smooth  # noqa: E402

METHOD_LABELS = {"tgrpo": "T-GRPO", "grpo": "GRPO", "tgrpo_a1": "T-GRPO, alpha 1.0"}
METHOD_COLORS = {"tgrpo": "tab:red", "grpo": "tab:blue", "tgrpo_a1": "tab:purple"}


@dataclass
class Run:
    name: str  # <method>-<seed>: tgrpo-0, grpo-1, tgrpo_a1-2
    method: str
    seed: int
    curve: list[dict]  # one row per RL step
    eval: dict  # tasks.evaluate's metrics: frames -> benchmark -> entry
    rl: dict = field(default_factory=dict)  # tasks.rl's metrics

    def score(self, benchmark: str, frames: int) -> float | None:
        entry = self.eval["frames"].get(str(frames), {}).get(benchmark) or {}
        return entry.get("score")

    def seconds(self) -> float:
        rl = sum(
            (r.get("time_rollout_s") or 0) + (r.get("time_scoring_s") or 0) + (r.get("time_update_s") or 0)
            for r in self.curve
        )
        return rl + float(self.eval.get("seconds") or 0)


def load_run(root: Path, name: str, spec: Mapping) -> Run:
    import json

    method = name.rsplit("-", 1)[0]
    rl = json.loads((root / "rl.json").read_text()) if (root / "rl.json").is_file() else {}
    return Run(
        name, method, int(spec["seed"]), read_curve(root / "rl.csv"), json.loads((root / "eval.json").read_text()), rl
    )


def window_means(values: Sequence[float | None], share: float = 0.2) -> tuple[float, float]:
    """Mean of the first and of the last ``share`` of the known values."""
    known = [v for v in values if v is not None]
    n = max(1, int(len(known) * share))
    return statistics.fmean(known[:n]), statistics.fmean(known[-n:])


def spread(values: Sequence[float], digits: int = 2) -> dict:
    return {
        "mean": round(statistics.fmean(values), digits),
        "sd": round(statistics.stdev(values), digits) if len(values) > 1 else None,
        "min": round(min(values), digits),
        "max": round(max(values), digits),
        "n": len(values),
    }


def verdict(per_run: Sequence[float], *, positive_is_good: bool = True) -> str:
    """reproduced: every run (or seed pair) shows the effect; partly: on average but not in every one; else not."""
    sign = 1 if positive_is_good else -1
    if all(sign * v > 0 for v in per_run):
        return "reproduced"
    if sign * statistics.fmean(per_run) > 0:
        return "partly reproduced"
    return "not reproduced"


# ----- the four observations -----------------------------------------------------------------------


def accuracy_trend(runs: Sequence[Run]) -> dict:
    """1. The accuracy reward trends up: last-20%-of-steps mean minus first-20% mean, per run."""
    per = {}
    for r in runs:
        first, last = window_means([row.get("accuracy") for row in r.curve])
        per[r.name] = {"first": round(first, 3), "last": round(last, 3), "change": round(last - first, 3)}
    changes = [v["change"] for v in per.values()]
    return {"per_run": per, "change": spread(changes, 3), "verdict": verdict(changes)}


def length_dip(curve: Sequence[dict], window: int) -> dict:
    """The smoothed length's start, its minimum over the first half, and its end; a dip-and-rise when the
    minimum lies at least 5% under the start and the end at least 5% over the minimum."""
    lengths = smooth([row.get("completion_length") for row in curve], window)
    known = [v for v in lengths if v is not None]
    start, end = known[min(window, len(known)) - 1], known[-1]
    half = known[: max(1, len(known) // 2)]
    low = min(half)
    low_step = int(curve[lengths.index(low)]["step"])
    return {
        "start": round(start, 1),
        "min": round(low, 1),
        "min_step": low_step,
        "end": round(end, 1),
        "dip_and_rise": low <= 0.95 * start and end >= 1.05 * low,
    }


def length_shape(runs: Sequence[Run], window: int) -> dict:
    """2. The response length first drops, then rises: the share of runs with a dip-and-rise."""
    per = {r.name: length_dip(r.curve, window) for r in runs}
    hits = sum(v["dip_and_rise"] for v in per.values())
    state = "reproduced" if hits == len(per) else "partly reproduced" if hits else "not reproduced"
    return {"per_run": per, "runs_with_dip_and_rise": hits, "runs": len(per), "verdict": state}


def paired(runs: Sequence[Run], benchmark: str, frames: int, method: str = "tgrpo", baseline: str = "grpo") -> dict:
    """``method`` minus ``baseline`` on one eval set, per seed (pairs share the SFT model, steps and data order)."""
    by = {(r.method, r.seed): r for r in runs}
    seeds = sorted({r.seed for r in runs if (method, r.seed) in by and (baseline, r.seed) in by})
    per = {
        s: {method: by[method, s].score(benchmark, frames), baseline: by[baseline, s].score(benchmark, frames)}
        for s in seeds
    }
    for v in per.values():
        v["difference"] = round(v[method] - v[baseline], 2)
    diffs = [v["difference"] for v in per.values()]
    return {
        "benchmark": benchmark,
        "frames": frames,
        "method": method,
        "baseline": baseline,
        "per_seed": per,
        "difference": spread(diffs),
        "verdict": verdict(diffs),
    }


def frames_gain(runs: Sequence[Run], benchmark: str, few: int, many: int) -> dict:
    """4. More frames than in training: score at ``many`` minus at ``few``, per run."""
    per = {r.name: {str(few): r.score(benchmark, few), str(many): r.score(benchmark, many)} for r in runs}
    for v in per.values():
        v["gain"] = round(v[str(many)] - v[str(few)], 2)
    gains = [v["gain"] for v in per.values()]
    return {"benchmark": benchmark, "per_run": per, "gain": spread(gains), "verdict": verdict(gains)}


def family_scores(results: Path) -> dict[str, float | None]:
    """Accuracy per generator family (data_source) from an eval's per-row outputs (a ``<set>@<frames>.jsonl``)."""
    import json

    from ..eval.summary import summarize

    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {
        task.split("/")[-1]: None if v is None else round(100 * v, 1)
        for task, v in summarize(results.stem, rows, task_averaged=True).tasks.items()
    }


def answer_concentration(results: Path) -> dict[str, dict]:
    """Per family: the model's most common final answer and the share of rows that give it. A share near 1
    means the answer does not depend on the video at all (a prior, not perception)."""
    import json
    import re
    from collections import Counter, defaultdict

    answers: dict[str, Counter] = defaultdict(Counter)
    for line in results.read_text().splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        found = re.findall(r"<answer>([^<]*)</answer>", row.get("output") or "")
        answer = found[-1].strip() if found else "(no answer)"
        answers[row["data_source"].split("/")[-1]][answer if len(answer) <= 24 else "(long text)"] += 1
    out = {}
    for family, counts in sorted(answers.items()):
        answer, n = counts.most_common(1)[0]
        out[family] = {"answer": answer, "share": round(n / sum(counts.values()), 3)}
    return out


def bonus_diagnostics(runs: Sequence[Run]) -> dict:
    """Per method, over all steps: how often the temporal bonus fired, and the ordered groups' accuracy against
    the shuffled groups' (the bonus can only teach order where the two differ)."""
    out = {}
    for method in dict.fromkeys(r.method for r in runs):
        mine = [r for r in runs if r.method == method]
        rows = [row for r in mine for row in r.curve]

        def mean(key: str, rows=rows):
            known = [row[key] for row in rows if row.get(key) is not None]
            return round(statistics.fmean(known), 3) if known else None

        out[method] = {
            "bonus_rate": mean("temporal_fired"),
            "accuracy": mean("accuracy"),
            "shuffled_accuracy": mean("shuffled_accuracy"),
            "kl": mean("kl"),
            "runs": len(mine),
        }
    return out


# ----- figures ----------------------------------------------------------------------------------------


def plot_overlay(
    runs: Sequence[Run],
    column: str,
    target: Path,
    *,
    title: str,
    ylabel: str,
    window: int,
    methods: Sequence[str] = ("tgrpo", "grpo"),
) -> Path:
    """One line per run (thin, smoothed over ``window`` steps), the mean over seeds per method in bold."""
    fig, ax = plt.subplots(figsize=(6.4, 3.8), dpi=100)
    for method in methods:
        mine = [r for r in runs if r.method == method]
        if not mine:
            continue
        color = METHOD_COLORS.get(method)
        series = []
        for r in mine:
            xs = [row["step"] for row in r.curve]
            ys = smooth([row.get(column) for row in r.curve], window)
            ax.plot(xs, ys, color=color, alpha=0.35, linewidth=1)
            series.append((xs, ys))
        n = min(len(s[0]) for s in series)
        mean = [
            statistics.fmean(v for v in (s[1][i] for s in series) if v is not None)
            if any(s[1][i] is not None for s in series)
            else None
            for i in range(n)
        ]
        ax.plot(
            series[0][0][:n],
            mean,
            color=color,
            linewidth=2.5,
            label=f"{METHOD_LABELS.get(method, method)}: mean of {len(mine)} seeds",
        )
    ax.set_xlabel("RL step")
    ax.set_ylabel(f"{ylabel} (mean of {window} steps)")
    return save_figure(fig, ax, target, title=title, legend_size=8)


def plot_paired(
    rows: Sequence[tuple[str, float, float]], target: Path, *, title: str, ylabel: str, labels: tuple[str, str]
) -> Path:
    """One pair of dots per row (a seed, or a run), joined by a line: left ``labels[0]``, right ``labels[1]``."""
    fig, ax = plt.subplots(figsize=(5.2, 3.8), dpi=100)
    for name, left, right in rows:
        ax.plot([0, 1], [left, right], marker="o", linewidth=1.5, label=name)
    lefts, rights = [r[1] for r in rows], [r[2] for r in rows]
    ax.plot(
        [0, 1],
        [statistics.fmean(lefts), statistics.fmean(rights)],
        color="black",
        linewidth=3,
        marker="s",
        label="mean",
    )
    ax.set_xticks([0, 1], labels)
    ax.set_xlim(-0.3, 1.3)
    ax.set_ylabel(ylabel)
    return save_figure(fig, ax, target, title=title, legend_size=7)
