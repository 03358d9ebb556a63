"""The toy reproduction's analysis: Video-R1's four observations (spec section 7) judged over seeds.

Every verdict follows a rule fixed before the runs (docs/toy-preregistration.md); the functions here only
apply it to the runs' curves (rl.csv) and greedy evals (eval.json), so the report's numbers are the metrics
files' numbers. ``load_inputs`` reads a toy/ folder, ``analyze`` turns what it read into a ``ToyReport``
(the data of reports/toy.md; its ``metrics`` are toy/metrics/toy.json), and toy_markdown renders it.
"""

from __future__ import annotations

import json
import re
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .figures import read_curve, smooth

if TYPE_CHECKING:
    from ..params.reports import Experiment

METHOD_LABELS = {"tgrpo": "T-GRPO", "grpo": "GRPO", "tgrpo_a1": "T-GRPO, alpha 1.0"}
SMOOTH_STEPS = 15  # pre-registered: the length rule reads the length smoothed over 15 steps
DIP = 0.05  # pre-registered: a dip-and-rise falls at least 5% under the start, then rises at least 5%
# The report's readings of a verdict (not pre-registered): when every model gives one answer per family on at
# least this share of the rows, its answers do not depend on the video.
FIXED_ANSWER_SHARE = 0.95  # order-dependent set: the policy never read the order
LONG_FIXED_ANSWER_SHARE = 0.7  # long clips: a near-fixed answer, which more frames can move without reading more


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


def load_run(root: Path, name: str, seed: int) -> Run:
    method = name.rsplit("-", 1)[0]
    rl = json.loads((root / "rl.json").read_text()) if (root / "rl.json").is_file() else {}
    return Run(name, method, seed, read_curve(root / "rl.csv"), json.loads((root / "eval.json").read_text()), rl)


# ----- the verdict rule and the four observations ---------------------------------------------------


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
    """reproduced: every run (or seed pair) shows the effect; partly: on average but not in every one; else not.
    No run at all is no evidence, never a vacuous "reproduced"."""
    if not per_run:
        raise ValueError("no run to judge")
    sign = 1 if positive_is_good else -1
    if all(sign * v > 0 for v in per_run):
        return "reproduced"
    if sign * statistics.fmean(per_run) > 0:
        return "partly reproduced"
    return "not reproduced"


def accuracy_trend(runs: Sequence[Run]) -> dict:
    """1. The accuracy reward trends up: last-20%-of-steps mean minus first-20% mean, per run."""
    per = {}
    for r in runs:
        first, last = window_means([row.get("accuracy") for row in r.curve])
        per[r.name] = {"first": round(first, 3), "last": round(last, 3), "change": round(last - first, 3)}
    changes = [v["change"] for v in per.values()]
    return {"per_run": per, "change": spread(changes, 3), "verdict": verdict(changes)}


def length_dip(curve: Sequence[dict], window: int) -> dict:
    """The smoothed length's start (its first full window), its minimum over the first half, and its end; a
    dip-and-rise when the minimum lies at least 5% under the start and the end at least 5% over the minimum."""
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
        "dip_and_rise": low <= (1 - DIP) * start and end >= (1 + DIP) * low,
    }


def length_shape(runs: Sequence[Run], window: int = SMOOTH_STEPS) -> dict:
    """2. The response length first drops, then rises: a dip-and-rise in every run, in some, or in none."""
    per = {r.name: length_dip(r.curve, window) for r in runs}
    hits = [v["dip_and_rise"] for v in per.values()]
    return {"per_run": per, "runs_with_dip_and_rise": sum(hits), "runs": len(per), "verdict": verdict(hits)}


def paired(runs: Sequence[Run], benchmark: str, frames: int, method: str = "tgrpo", baseline: str = "grpo") -> dict:
    """``method`` minus ``baseline`` on one eval set, per seed (pairs share the SFT model, steps and data order).
    A seed with only one of the two runs has no pair and is left out (``n`` counts the pairs)."""
    by = {(r.method, r.seed): r for r in runs}
    seeds = sorted({r.seed for r in runs if (method, r.seed) in by and (baseline, r.seed) in by})
    if not seeds:
        raise ValueError(f"no seed has both a {method} and a {baseline} run")
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


# ----- why: per-row answers and the temporal bonus ----------------------------------------------------


def family_scores(results: Path) -> dict[str, float | None]:
    """Accuracy per generator family (data_source) from an eval's per-row outputs (a ``<set>@<frames>.jsonl``)."""
    from ..eval.summary import summarize

    rows = [json.loads(line) for line in results.read_text().splitlines() if line.strip()]
    return {
        task.split("/")[-1]: None if v is None else round(100 * v, 1)
        for task, v in summarize(results.stem, rows, task_averaged=True).tasks.items()
    }


def answer_concentration(results: Path) -> dict[str, dict]:
    """Per family: the model's most common final answer and the share of rows that give it. A share near 1
    means the answer does not depend on the video at all (a prior, not perception)."""
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


def method_families(per_model: Mapping[str, dict], runs: Sequence[Run]) -> dict[str, dict]:
    """Per-family accuracy of the SFT model and, per method, the mean over its runs (a family a run could not
    score counts as 0)."""
    out = {"sft": per_model["sft"]}
    for method in dict.fromkeys(r.method for r in runs):
        per_run = [per_model[r.name] for r in runs if r.method == method]
        out[method] = {f: round(sum(p[f] or 0 for p in per_run) / len(per_run), 1) for f in per_run[0]}
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


def lowest_share(concentration: Mapping[str, dict]) -> float:
    """The smallest share of rows giving a model's most common answer, over models and families: near 1, every
    model answers each family the same way whatever the video."""
    return min(a["share"] for per_model in concentration.values() for a in per_model.values())


def why_no_order_gain(obs3: dict, concentration: dict, diagnostics: dict, followup: dict) -> dict | None:
    """Stated when T-GRPO did not beat GRPO and every model gives one fixed answer per order family on at least
    95% of the rows: the policy never read the order, so neither method had order-dependent behaviour to
    reinforce. ``followup_unchanged``: every follow-up method's greedy order accuracy equals GRPO's on every seed."""
    share = lowest_share(concentration)
    if obs3["verdict"] == "reproduced" or share < FIXED_ANSWER_SHARE:
        return None
    tgrpo = diagnostics.get("tgrpo", {})
    return {
        "lowest_share": share,
        "rl_runs": len(concentration) - 1,  # every model but the SFT one
        "bonus_rate": tgrpo.get("bonus_rate") or 0,
        "shuffled_accuracy": tgrpo.get("shuffled_accuracy") or 0,
        "accuracy": tgrpo.get("accuracy") or 0,
        "followup_unchanged": bool(followup)
        and all(v["order"]["difference"]["max"] == 0 == v["order"]["difference"]["min"] for v in followup.values()),
    }


def why_no_frames_gain(obs4: dict, long_answers: dict, few: int, many: int) -> dict | None:
    """Stated when more frames did not help and on the long clips, too, each model gives one answer per family
    for at least 70% of the videos at both frame counts: the score moved with that near-fixed answer."""
    share = min(lowest_share(long_answers[few]), lowest_share(long_answers[many]))
    if obs4["verdict"] == "reproduced" or share < LONG_FIXED_ANSWER_SHARE:
        return None
    return {"lowest_share": share}


# ----- the report's inputs and its data ---------------------------------------------------------------


@dataclass
class ToyInputs:
    """What the report reads, loaded: toy/params.yaml's profile section and experiment, the runs, the metrics of
    the SFT stage and of the base and SFT evals, and summaries of the per-row eval outputs."""

    params: dict  # the profile's section of toy/params.yaml (synth, base_model, sft, rl, eval)
    runs: list[Run]  # experiment.runs, the registered comparison
    followups: list[Run]  # experiment.followup
    sft: dict  # metrics/sft.json
    base_eval: dict  # metrics/eval_base.json
    sft_eval: dict  # metrics/eval_sft.json
    order_families: dict[str, dict]  # "sft" and every run's name -> family_scores of order@few
    order_answers: dict[str, dict]  # "sft" and every run's name -> answer_concentration of order@few
    long_answers: dict[int, dict[str, dict]]  # few, many -> "sft" and each registered run -> long@frames

    @property
    def frames(self) -> tuple[int, int]:
        return compared_frames(self.params)


def compared_frames(params: dict) -> tuple[int, int]:
    """The frame counts compared: the training count (eval.frames' first) and the largest one evaluated."""
    return params["eval"]["frames"][0], params["eval"]["frames"][-1]


def load_inputs(root: Path, params: dict, experiment: Experiment) -> ToyInputs:
    """Read a toy/ folder: runs/<name>/{rl.csv, rl.json, eval.json}, metrics/, and the per-row eval outputs."""
    runs = [load_run(root / "runs" / n, n, r.seed) for n, r in experiment.runs.items()]
    followups = [load_run(root / "runs" / n, n, r.seed) for n, r in experiment.followup.items()]
    metrics = {
        name: json.loads((root / "metrics" / f"{name}.json").read_text()) for name in ("sft", "eval_base", "eval_sft")
    }
    return ToyInputs(
        params=params,
        runs=runs,
        followups=followups,
        sft=metrics["sft"],
        base_eval=metrics["eval_base"],
        sft_eval=metrics["eval_sft"],
        **read_row_summaries(root, runs, followups, compared_frames(params)),
    )


def read_row_summaries(root: Path, runs: Sequence[Run], followups: Sequence[Run], frames: tuple[int, int]) -> dict:
    """ToyInputs' summaries of the per-row eval outputs (data/eval/sft/, runs/<name>/eval/: DVC-tracked, not in
    git; toy/metrics/toy.json keeps what is read from them)."""
    few, many = frames
    registered = {"sft": root / "data" / "eval" / "sft", **{r.name: root / "runs" / r.name / "eval" for r in runs}}
    every = {**registered, **{r.name: root / "runs" / r.name / "eval" for r in followups}}
    return {
        "order_families": {n: family_scores(d / f"order@{few}.jsonl") for n, d in every.items()},
        "order_answers": {n: answer_concentration(d / f"order@{few}.jsonl") for n, d in every.items()},
        "long_answers": {
            f: {n: answer_concentration(d / f"long@{f}.jsonl") for n, d in registered.items()} for f in (few, many)
        },
    }


@dataclass
class ToyReport:
    """Everything reports/toy.md shows. ``metrics`` is toy/metrics/toy.json: the four verdicts, the secondary
    comparisons and the diagnostics, as data; the other fields are what only the Markdown needs."""

    metrics: dict
    params: dict  # the profile's section of toy/params.yaml: the design's numbers
    few: int  # frames in training, and the primary metric's count
    many: int  # the most frames evaluated
    smooth: int  # steps per moving average in the curves and the length rule
    seeds: list[int]
    methods: list[str]  # every method run, registered and follow-up, in order
    protocol: str  # the evals' generation protocol
    starting_point: dict[str, dict]  # base, sft -> order / static @ few, long @ few, long @ many
    every_run: list[dict]  # one row per registered run
    sft: dict  # metrics/sft.json
    why_no_order_gain: dict | None
    why_no_frames_gain: dict | None


def eval_score(metrics: dict, benchmark: str, frames: int) -> float | None:
    return (metrics["frames"].get(str(frames), {}).get(benchmark) or {}).get("score")


def analyze(inputs: ToyInputs, smooth: int = SMOOTH_STEPS) -> ToyReport:
    """Judge the four observations by the pre-registered rules and gather the report's tables."""
    runs, everyone = inputs.runs, [*inputs.runs, *inputs.followups]
    few, many = inputs.frames
    methods = list(dict.fromkeys(r.method for r in everyone))
    trend = accuracy_trend(runs)
    obs3 = paired(runs, "order", few)
    obs4 = frames_gain(runs, "long", few, many)
    diagnostics = bonus_diagnostics(everyone)
    followup = {
        m: {"order": paired(everyone, "order", few, method=m), "static": paired(everyone, "static", few, method=m)}
        for m in methods
        if m not in ("tgrpo", "grpo")
    }
    metrics = {
        "accuracy_trend": trend,
        "length_shape": length_shape(runs, smooth),
        "tgrpo_vs_grpo": obs3,
        "tgrpo_vs_grpo_static": paired(runs, "static", few),
        "tgrpo_vs_grpo_long": paired(runs, "long", many),
        "frames": obs4,
        "frames_control": frames_gain(runs, "order", few, many),  # 4-state clips: both counts sample the same frames
        "bonus_diagnostics": diagnostics,
        "followup": followup,
        "order_families": method_families(inputs.order_families, everyone),
        "answer_concentration": inputs.order_answers,
        "long_answer_concentration": inputs.long_answers,
    }
    protocol = inputs.sft_eval["protocol"]
    return ToyReport(
        metrics=metrics,
        params=inputs.params,
        few=few,
        many=many,
        smooth=smooth,
        seeds=sorted({r.seed for r in runs}),
        methods=methods,
        protocol=protocol["label"] if "label" in protocol else protocol.get("name"),
        starting_point={
            name: {
                "order": eval_score(m, "order", few),
                "static": eval_score(m, "static", few),
                "long_few": eval_score(m, "long", few),
                "long_many": eval_score(m, "long", many),
            }
            for name, m in (("base", inputs.base_eval), ("sft", inputs.sft_eval))
        },
        every_run=[
            {
                "name": r.name,
                "method": r.method,
                "seed": r.seed,
                **trend["per_run"][r.name],
                "order": r.score("order", few),
                "static": r.score("static", few),
                "long_few": r.score("long", few),
                "long_many": r.score("long", many),
            }
            for r in runs
        ],
        sft=inputs.sft,
        why_no_order_gain=why_no_order_gain(obs3, inputs.order_answers, diagnostics, followup),
        why_no_frames_gain=why_no_frames_gain(obs4, inputs.long_answers, few, many),
    )
