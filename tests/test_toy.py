"""The toy reproduction (toy/dvc.yaml, reports/toy.md). Its verdict rules (videor1.reports.toy, fixed in
docs/toy-preregistration.md) and the report's conclusions on made-up runs worked out by hand; the stage script
re-rendering the committed report from the committed inputs, byte for byte; and, at smoke size, every stage
command of the file, two runs, and a report whose numbers must be the metrics files' numbers. The full run
(`dvc repro toy/dvc.yaml`, about an hour on 2 cores) is not CI's."""

from __future__ import annotations

import json
import runpy
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from videor1.reports import toy
from videor1.reports.toy import Run, ToyInputs
from videor1.reports.toy_markdown import render_markdown

from .conftest import REPO

# ----- the verdict rules, by hand ------------------------------------------------------------------------


def test_verdict_needs_every_run_for_reproduced_and_the_mean_for_partly():
    assert toy.verdict([0.1, 0.2, 0.3]) == "reproduced"  # every run has the paper's sign
    assert toy.verdict([0.2, 0.0, 0.1]) == "partly reproduced"  # 0.0 is no effect; mean 0.3 / 3 = 0.1 > 0
    assert toy.verdict([0.5, -0.5]) == "not reproduced"  # mean exactly 0: no sign at all
    assert toy.verdict([-0.1, -0.2]) == "not reproduced"
    assert toy.verdict([-0.1, -0.2], positive_is_good=False) == "reproduced"
    with pytest.raises(ValueError, match="no run"):  # no run is no evidence, not a vacuous "every run"
        toy.verdict([])


def curve(accuracy=None, lengths=None) -> list[dict]:
    """RL log rows, step 1 first; a column not given is absent (None) in every row."""
    n = len(accuracy or lengths)
    return [
        {"step": float(i + 1), "accuracy": (accuracy or [None] * n)[i], "completion_length": (lengths or [None] * n)[i]}
        for i in range(n)
    ]


def make_run(name: str, seed: int, rows: list[dict] | None = None, **scores: float) -> Run:
    """A run whose eval holds ``scores`` given as benchmark_frames=score: order_8=56.7."""
    frames: dict = {}
    for key, score in scores.items():
        benchmark, count = key.rsplit("_", 1)
        frames.setdefault(count, {})[benchmark] = {"score": score}
    return Run(name, name.rsplit("-", 1)[0], seed, rows or [], {"frames": frames, "seconds": 60.0})


def test_accuracy_trend_compares_the_first_and_last_fifth_of_the_known_steps():
    # 10 steps: a fifth is 2. first (0.2 + 0.4) / 2 = 0.3, last (0.5 + 0.7) / 2 = 0.6: +0.3
    up = make_run("tgrpo-0", 0, curve(accuracy=[0.2, 0.4, 0.3, 0.3, 0.3, 0.3, 0.3, 0.3, 0.5, 0.7]))
    # 9 known of 10 (a step without accuracy is skipped): int(9 * 0.2) = 1 step per window. first 0.5, last 0.4
    down = make_run("grpo-0", 0, curve(accuracy=[0.5, None, 0.1, 0.9, 0.1, 0.9, 0.1, 0.9, 0.1, 0.4]))
    obs = toy.accuracy_trend([up, down])
    assert obs["per_run"] == {
        "tgrpo-0": {"first": 0.3, "last": 0.6, "change": 0.3},
        "grpo-0": {"first": 0.5, "last": 0.4, "change": -0.1},
    }
    # mean (0.3 - 0.1) / 2 = 0.1 > 0 but one run falls; sd sqrt(((0.2)^2 + (0.2)^2) / 1) = 0.283
    assert obs["change"] == {"mean": 0.1, "sd": 0.283, "min": -0.1, "max": 0.3, "n": 2}
    assert obs["verdict"] == "partly reproduced"


@pytest.mark.parametrize(
    ("lengths", "expected"),
    [
        # window 1: start 40; the first half (3 values) has its minimum 38 = 0.95 * 40 at step 3; the end 39.9 is
        # 1.05 * 38: both exactly at the 5% bars, so a dip-and-rise
        ([40, 39, 38, 41, 45, 39.9], {"start": 40, "min": 38, "min_step": 3, "end": 39.9, "dip_and_rise": True}),
        # the minimum 38.1 is above 38.0: no dip, whatever the end does
        ([40, 39, 38.1, 41, 45, 60], {"start": 40, "min": 38.1, "min_step": 3, "end": 60, "dip_and_rise": False}),
        # a dip to 38, but the end 39.8 is under 39.9: no rise
        ([40, 39, 38, 41, 45, 39.8], {"start": 40, "min": 38, "min_step": 3, "end": 39.8, "dip_and_rise": False}),
        # the low 30 lies in the second half (step 4 of 6): the first half's minimum is 39, no dip
        ([40, 39.5, 39, 30, 45, 45], {"start": 40, "min": 39, "min_step": 3, "end": 45, "dip_and_rise": False}),
    ],
)
def test_length_dip_and_rise_at_the_5_percent_bars(lengths, expected):
    assert toy.length_dip(curve(lengths=lengths), window=1) == expected


def test_length_dip_starts_at_the_first_full_window():
    # window 2: the trailing means are 50, (50 + 30) / 2 = 40, (30 + 38) / 2 = 34, 38, 42, 46. The start is the
    # first full window, 40 (not the raw 50); the first half's minimum 34 at step 3 is 15% under it; the end
    # 46 >= 1.05 * 34 = 35.7
    dip = toy.length_dip(curve(lengths=[50, 30, 38, 38, 46, 46]), window=2)
    assert dip == {"start": 40, "min": 34, "min_step": 3, "end": 46, "dip_and_rise": True}


def test_length_shape_counts_runs_with_a_dip_and_rise():
    dip = curve(lengths=[40, 39, 38, 41, 45, 39.9])  # a dip-and-rise (above)
    flat = curve(lengths=[40, 40, 40, 40, 40, 40])
    runs = [make_run("tgrpo-0", 0, dip), make_run("grpo-0", 0, dip), make_run("tgrpo-1", 1, flat)]
    assert toy.length_shape(runs[:2], window=1)["verdict"] == "reproduced"  # 2 of 2
    obs = toy.length_shape(runs, window=1)
    assert (obs["runs_with_dip_and_rise"], obs["runs"], obs["verdict"]) == (2, 3, "partly reproduced")
    assert toy.length_shape(runs[2:], window=1)["verdict"] == "not reproduced"  # 0 of 1


def test_paired_difference_per_seed_leaves_out_a_seed_without_its_partner():
    runs = [
        make_run("tgrpo-0", 0, order_8=60.0),
        make_run("grpo-0", 0, order_8=55.0),  # +5.0
        make_run("tgrpo-1", 1, order_8=50.0),
        make_run("grpo-1", 1, order_8=52.5),  # -2.5
        make_run("tgrpo-2", 2, order_8=90.0),  # grpo-2 is missing: seed 2 has no pair
    ]
    obs = toy.paired(runs, "order", 8)
    assert obs["per_seed"] == {
        0: {"tgrpo": 60.0, "grpo": 55.0, "difference": 5.0},
        1: {"tgrpo": 50.0, "grpo": 52.5, "difference": -2.5},
    }
    # mean (5 - 2.5) / 2 = 1.25; sd 7.5 / sqrt(2) = 5.303; n = 2 pairs, not 3 seeds
    assert obs["difference"] == {"mean": 1.25, "sd": 5.3, "min": -2.5, "max": 5.0, "n": 2}
    assert obs["verdict"] == "partly reproduced"
    # the committed run's case: equal scores on every seed, a difference of exactly 0, is no effect
    same = [make_run(f"{m}-{s}", s, order_8=56.7) for s in (0, 1, 2) for m in ("tgrpo", "grpo")]
    assert toy.paired(same, "order", 8)["verdict"] == "not reproduced"
    with pytest.raises(ValueError, match="no seed has both a tgrpo and a grpo run"):  # nothing to judge
        toy.paired(runs[4:], "order", 8)


def test_frames_gain_is_many_minus_few_per_run():
    runs = [make_run("tgrpo-0", 0, long_8=40.0, long_16=50.0), make_run("grpo-0", 0, long_8=45.0, long_16=46.0)]
    obs = toy.frames_gain(runs, "long", 8, 16)
    # gains 50 - 40 = +10 and 46 - 45 = +1: both positive
    assert {n: v["gain"] for n, v in obs["per_run"].items()} == {"tgrpo-0": 10.0, "grpo-0": 1.0}
    assert (obs["gain"]["mean"], obs["verdict"]) == (5.5, "reproduced")
    runs.append(make_run("tgrpo-1", 1, long_8=50.0, long_16=39.0))  # -11: mean (10 + 1 - 11) / 3 = 0
    assert toy.frames_gain(runs, "long", 8, 16)["verdict"] == "not reproduced"


# ----- why: the answers behind the verdicts, and the conclusions they allow ----------------------------


def test_answer_concentration_is_the_most_common_final_answer_and_its_share(tmp_path):
    rows = [
        ("synth/motion_direction", "<think>left</think><answer>A</answer>"),
        ("synth/motion_direction", "<answer>B</answer> then <answer>A</answer>"),  # the last answer counts
        ("synth/motion_direction", "<answer> A </answer>"),
        ("synth/motion_direction", "<answer>B</answer>"),
        ("synth/event_order", "no tag at all"),
        ("synth/event_order", "<answer>" + "x" * 25 + "</answer>"),  # 25 characters: not an option
        ("synth/event_order", "<answer></answer>"),
    ]
    results = tmp_path / "order@8.jsonl"
    results.write_text("".join(json.dumps({"data_source": s, "output": o}) + "\n" for s, o in rows))
    concentration = toy.answer_concentration(results)
    # motion_direction: A, A, A, B -> A on 3 of 4 rows; event_order: one each of three -> the first seen, 1/3
    assert concentration == {
        "event_order": {"answer": "(no answer)", "share": 0.333},
        "motion_direction": {"answer": "A", "share": 0.75},
    }
    assert toy.lowest_share({"sft": concentration, "tgrpo-0": {"x": {"answer": "1", "share": 1.0}}}) == 0.333


def test_method_families_average_each_methods_runs():
    per_model = {
        "sft": {"motion_direction": 48.0},
        "tgrpo-0": {"motion_direction": 50.0},
        "tgrpo-1": {"motion_direction": 55.0},
        "grpo-0": {"motion_direction": None},  # no row of the family scored: counted as 0
        "grpo-1": {"motion_direction": 45.0},
    }
    runs = [make_run(n, int(n[-1])) for n in per_model if n != "sft"]
    # tgrpo (50 + 55) / 2 = 52.5; grpo (0 + 45) / 2 = 22.5
    assert toy.method_families(per_model, runs) == {
        "sft": {"motion_direction": 48.0},
        "tgrpo": {"motion_direction": 52.5},
        "grpo": {"motion_direction": 22.5},
    }


def fixed(share: float) -> dict:
    """One model's answers on two families: always "A" on one, "B" on ``share`` of the rows of the other."""
    return {"event_order": {"answer": "A", "share": 1.0}, "motion_direction": {"answer": "B", "share": share}}


NOT_REPRODUCED = {"verdict": "not reproduced"}
DIAGNOSTICS = {"tgrpo": {"bonus_rate": 0.54, "accuracy": 0.292, "shuffled_accuracy": 0.3, "kl": 0.04, "runs": 3}}


def followup(*differences: float) -> dict:
    diffs = toy.spread(differences)
    return {"tgrpo_a1": {"order": {"difference": diffs}}}


def test_why_no_order_gain_needs_fixed_answers_on_95_percent_of_the_rows():
    at_bar = {"sft": fixed(1.0), "tgrpo-0": fixed(0.95), "grpo-0": fixed(1.0)}  # lowest share exactly 0.95
    why = toy.why_no_order_gain(NOT_REPRODUCED, at_bar, DIAGNOSTICS, followup(0.0, 0.0))
    assert why == {
        "lowest_share": 0.95,
        "rl_runs": 2,  # every model but the SFT one
        "bonus_rate": 0.54,
        "shuffled_accuracy": 0.3,
        "accuracy": 0.292,
        "followup_unchanged": True,  # the follow-up's difference to GRPO is 0 on every seed
    }
    under = {**at_bar, "grpo-0": fixed(0.949)}  # one model answers the video on 5.1% of a family's rows
    assert toy.why_no_order_gain(NOT_REPRODUCED, under, DIAGNOSTICS, {}) is None
    partly = {"verdict": "partly reproduced"}  # T-GRPO ahead on average only: still "did not beat"
    assert toy.why_no_order_gain(partly, at_bar, DIAGNOSTICS, {}) is not None
    assert toy.why_no_order_gain({"verdict": "reproduced"}, at_bar, DIAGNOSTICS, {}) is None
    # the follow-up sentence only where a follow-up ran and its answers did not move on any seed
    assert not toy.why_no_order_gain(NOT_REPRODUCED, at_bar, DIAGNOSTICS, followup(0.0, 1.3))["followup_unchanged"]
    assert not toy.why_no_order_gain(NOT_REPRODUCED, at_bar, DIAGNOSTICS, {})["followup_unchanged"]


def test_why_no_frames_gain_needs_near_fixed_answers_at_both_frame_counts():
    at_bar = {8: {"sft": fixed(1.0), "tgrpo-0": fixed(0.7)}, 16: {"sft": fixed(0.8), "tgrpo-0": fixed(1.0)}}
    # the lowest share over both counts is 0.7, exactly at the bar
    assert toy.why_no_frames_gain(NOT_REPRODUCED, at_bar, 8, 16) == {"lowest_share": 0.7}
    under = {8: at_bar[8], 16: {"sft": fixed(0.69), "tgrpo-0": fixed(1.0)}}  # 0.69 at 16 frames alone
    assert toy.why_no_frames_gain(NOT_REPRODUCED, under, 8, 16) is None
    assert toy.why_no_frames_gain({"verdict": "reproduced"}, at_bar, 8, 16) is None


# ----- the whole report on made-up runs ---------------------------------------------------------------

PARAMS = {
    "synth": {
        "train_video_rows": 4,
        "train_image_rows": 2,
        "eval_sets": {
            "order": {"rows": 6, "families": ["event_order", "motion_direction"]},
            "long": {"rows": 6, "families": ["event_order", "motion_direction"], "spec": {"states": 8}},
        },
    },
    "base_model": {"model": {"hidden_size": 8, "num_hidden_layers": 1}},
    "sft": {"train": {"epochs": 1}},
    "rl": {
        "train": {
            "steps": 5,
            "prompts_per_step": 2,
            "num_generations": 2,
            "learning_rate": 1e-4,
            "alpha": 0.3,
            "mu": 0.8,
            "len_min": 40,
            "len_max": 100,
        }
    },
    "eval": {"frames": [8, 16]},
}


def made_up_inputs(order_share: float, long_share: float, long_gain: float) -> ToyInputs:
    """Two seeds of T-GRPO and GRPO over 5 steps. Accuracy reward 0.2 -> 0.4 in every run; T-GRPO - GRPO on
    order @ 8 is +10 on seed 0 and 0 on seed 1; long @ 16 - @ 8 is ``long_gain`` in every run."""
    rows = [
        {
            "step": float(i + 1),
            "accuracy": a,
            "completion_length": length,
            "temporal_fired": 0.5,
            "shuffled_accuracy": 0.25,
            "kl": 0.01,
        }
        for i, (a, length) in enumerate(zip([0.2, 0.3, 0.3, 0.3, 0.4], [60, 50, 55, 60, 70], strict=True))
    ]
    order = {"tgrpo-0": 60.0, "grpo-0": 50.0, "tgrpo-1": 55.0, "grpo-1": 55.0}
    runs = [
        make_run(n, int(n[-1]), rows, order_8=o, order_16=o, static_8=20.0, long_8=30.0, long_16=30.0 + long_gain)
        for n, o in order.items()
    ]
    metrics = {"frames": {"8": {"order": {"score": 50.0}}}, "seconds": 30.0, "protocol": {"name": "spec"}}
    models = ["sft", *order]
    return ToyInputs(
        params=PARAMS,
        runs=runs,
        followups=[],
        sft={"steps": 3, "rows": 4, "loss_first_window": 4.0, "loss_last_window": 1.0, "train_runtime_s": 60.0},
        base_eval=metrics,
        sft_eval=metrics,
        order_families={n: {"event_order": 50.0, "motion_direction": 50.0} for n in models},
        order_answers={n: fixed(order_share) for n in models},
        long_answers={f: {n: fixed(long_share) for n in models} for f in (8, 16)},
    )


FIGURE_NAMES = ["accuracy", "length", "temporal", "shuffled", "kl", "followup", "order", "frames"]


def render(inputs: ToyInputs) -> str:
    return render_markdown(toy.analyze(inputs, smooth=1), {k: f"toy-figures/{k}.png" for k in FIGURE_NAMES})


def test_made_up_runs_give_the_hand_worked_verdicts_and_their_reading():
    report = toy.analyze(made_up_inputs(order_share=1.0, long_share=1.0, long_gain=-2.0), smooth=1)
    assert [report.metrics[k]["verdict"] for k in ("accuracy_trend", "length_shape", "tgrpo_vs_grpo", "frames")] == [
        "reproduced",  # a fifth of 5 steps is 1: 0.4 - 0.2 = +0.2 in every run
        "reproduced",  # start 60; the first half (2 steps) dips to 50 <= 0.95 * 60 = 57; end 70 >= 52.5: every run
        "partly reproduced",  # +10 on seed 0, 0 on seed 1: mean +5
        "not reproduced",  # -2 in every run
    ]
    lines = render_markdown(report, {k: f"toy-figures/{k}.png" for k in FIGURE_NAMES}).splitlines()
    assert lines[lines.index("|---|---|---|---|") + 1 :][:4] == [
        "| 1 | the accuracy reward trends up during RL | **reproduced** | last − first 20% of steps: "
        "+0.200 ± 0.000 (sd), range +0.200 to +0.200, n = 4 |",
        "| 2 | the response length first drops, then rises | **reproduced** | 4 of 4 runs dip ≥ 5% and recover ≥ 5% |",
        # sd of (10, 0): sqrt((5^2 + 5^2) / 1) = 7.07
        "| 3 | T-GRPO beats GRPO on order-dependent questions | **partly reproduced** | T-GRPO − GRPO, greedy "
        "accuracy @ 8 frames: +5.0 points ± 7.1 (sd), range +0.0 to +10.0, n = 2 |",
        "| 4 | more frames than in training help, most on long videos | **not reproduced** | long clips, @ 16 − @ 8: "
        "-2.0 points ± 0.0 (sd), range -2.0 to -2.0, n = 4 |",
    ]
    shows = lines[lines.index("## What this shows") + 2 :][:2]
    # T-GRPO not ahead on every seed and every model's answers fixed on every row (share 1.0): the order reading.
    # The bonus fired on 0.5 of the groups; shuffled accuracy 0.25 against accuracy (0.2 + 3 * 0.3 + 0.4) / 5 = 0.3
    assert shows[0].startswith(
        "**Why T-GRPO did not beat GRPO here:** on the order-dependent questions every model, the SFT model and all "
        "4 RL runs, gives one fixed answer per family whatever the video (on every row; the table under *Why*)."
    )
    assert (
        "T-GRPO's bonus fired for 50% of video groups while the shuffled-frame accuracy (0.250) matched the "
        "ordered accuracy (0.300)" in shows[0]
    )
    assert "The follow-up" not in shows[0]  # no follow-up ran, so none is claimed
    # more frames did not help, and the long answers are fixed too (share 1.0 >= 0.7)
    assert shows[1].startswith(
        "**Why more frames did not help:** on the long clips too each model gives one answer "
        "per family for at least 100% of the videos, at 8 and at 16 frames"
    )
    # no timing column: a report is a function of what the runs made, not of how long they took
    assert "| tgrpo-0 | T-GRPO | 0 | 0.200 → 0.400 | 60.0 | 20.0 | 30.0 | 28.0 |" in lines


def test_made_up_runs_at_and_under_the_fixed_answer_bars():
    at_bars = render(made_up_inputs(order_share=0.95, long_share=0.7, long_gain=-2.0))
    assert "whatever the video (on at least 95% of the rows;" in at_bars and "for at least 70% of the videos" in at_bars
    under = render(made_up_inputs(order_share=0.949, long_share=0.699, long_gain=-2.0))
    assert "**Why" not in under
    assert "## What this shows\n\nThe verdicts above follow the pre-registered rules; see each section" in under
    frames_help = render(made_up_inputs(order_share=1.0, long_share=1.0, long_gain=+2.0))
    assert (
        "**reproduced** | long clips, @ 16 − @ 8: +2.0 points" in frames_help and "Why more frames" not in frames_help
    )


# ----- the committed report, re-rendered -------------------------------------------------------------


@pytest.fixture
def committed_toy(tmp_path: Path, monkeypatch) -> Path:
    """The committed inputs of the report stage in a copy of toy/ beside an empty reports/. The per-row eval
    outputs the report reads (data/eval/sft/, runs/*/eval/) are DVC's, not git's; toy/metrics/toy.json holds
    what was read from them (each run's per-family score given as its method's mean keeps that mean)."""
    toy_dir = tmp_path / "toy"
    shutil.copytree(REPO / "toy" / "metrics", toy_dir / "metrics", ignore=shutil.ignore_patterns("toy.json"))
    shutil.copy(REPO / "toy" / "params.yaml", toy_dir / "params.yaml")
    for run in (REPO / "toy" / "runs").iterdir():
        for name in ("rl.csv", "rl.json", "eval.json"):
            (toy_dir / "runs" / run.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(run / name, toy_dir / "runs" / run.name / name)
    (tmp_path / "reports").mkdir()
    recorded = json.loads((REPO / "toy" / "metrics" / "toy.json").read_text())

    def recorded_summaries(root, runs, followups, frames):
        families = recorded["order_families"]
        return {
            "order_families": {"sft": families["sft"], **{r.name: families[r.method] for r in [*runs, *followups]}},
            "order_answers": recorded["answer_concentration"],
            "long_answers": {int(f): v for f, v in recorded["long_answer_concentration"].items()},
        }

    monkeypatch.setattr(toy, "read_row_summaries", recorded_summaries)
    monkeypatch.chdir(toy_dir)
    return toy_dir


def test_the_stage_renders_the_committed_inputs_to_the_committed_report(committed_toy):
    from tasks import toy_report

    toy_report.main()
    reports = committed_toy.parent / "reports"
    assert (reports / "toy.md").read_text() == (REPO / "reports" / "toy.md").read_text()
    assert (committed_toy / "metrics" / "toy.json").read_bytes() == (REPO / "toy" / "metrics" / "toy.json").read_bytes()
    figures = sorted(p.name for p in (REPO / "reports" / "toy-figures").iterdir())
    assert sorted(p.name for p in (reports / "toy-figures").iterdir()) == figures
    for name in figures:  # matplotlib's Agg output is deterministic at a pinned version
        assert (reports / "toy-figures" / name).read_bytes() == (
            REPO / "reports" / "toy-figures" / name
        ).read_bytes(), name


def test_the_stage_refuses_a_registered_run_without_its_eval(committed_toy):
    from tasks import toy_report

    (committed_toy / "runs" / "grpo-1" / "eval.json").unlink()
    with pytest.raises(SystemExit, match=r"runs without an eval yet: \['grpo-1'\]"):
        toy_report.main()
    assert not (committed_toy.parent / "reports" / "toy.md").exists()


# ----- every stage command at smoke size --------------------------------------------------------------


@pytest.fixture
def toy_dir(tmp_path: Path) -> Path:
    """toy/params.yaml and toy/dvc.yaml at smoke size in a fresh DVC repository (the stage commands run here)."""
    from dvc.repo import Repo

    (tmp_path / "toy").mkdir()
    shutil.copy(REPO / "toy" / "dvc.yaml", tmp_path / "toy" / "dvc.yaml")
    params = yaml.safe_load((REPO / "toy" / "params.yaml").read_text())
    toy = params["toy"]
    toy["synth"].update(train_video_rows=12, train_image_rows=4)
    for eval_set in toy["synth"]["eval_sets"].values():
        eval_set["rows"] = 3
    toy["sft"]["train"].update(max_steps=4, save_steps=2)
    toy["rl"]["train"].update(steps=3, save_steps=2, prompts_per_step=2, num_generations=2, max_completion_length=24)
    toy["eval"]["protocol_overrides"]["max_new_tokens"] = 24  # a barely trained model babbles to the limit
    params["experiment"]["runs"] = {"tgrpo-0": {"temporal": True, "seed": 0}, "grpo-0": {"temporal": False, "seed": 0}}
    params["experiment"]["followup"] = {"tgrpo_a1-0": {"temporal": True, "seed": 0, "alpha": 1.0}}
    (tmp_path / "toy" / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    Repo.init(str(tmp_path), no_scm=True).close()
    return tmp_path / "toy"


def run_stage_command(cmd: str, wdir: Path, monkeypatch) -> None:
    """A stage's ``python -m MODULE ARGS`` in this process (the suite's time budget has no room for 15
    interpreter start-ups); the module runs as ``__main__``, exactly as DVC would start it."""
    argv = shlex.split(cmd)
    assert argv[:2] == ["python", "-m"], cmd
    monkeypatch.chdir(wdir)
    monkeypatch.setattr(sys, "argv", [argv[2], *argv[3:]])
    runpy.run_module(argv[2], run_name="__main__", alter_sys=False)


@pytest.mark.slow
def test_toy_reproduction_runs_every_stage_command_and_reports_its_metrics(toy_dir, monkeypatch):
    from dvc.repo import Repo

    with Repo(str(toy_dir.parent)) as repo:
        stages = repo.stage.collect(str(toy_dir / "dvc.yaml"))  # rendered: foreach expanded, ${...} filled in
    names = [s.addressing.split(":")[-1] for s in stages]
    assert names == [
        "synth",
        "base_model",
        "collect",
        "cot",
        "filter",
        "sft",
        "rl@tgrpo-0",
        "rl@grpo-0",
        "evaluate@base",
        "evaluate@sft",
        "evaluate_run@tgrpo-0",
        "evaluate_run@grpo-0",
        "rl_followup@tgrpo_a1-0",
        "evaluate_followup@tgrpo_a1-0",
        "report",
    ]
    for stage in stages:  # the file lists them in an order that respects their dependencies
        run_stage_command(stage.cmd, Path(stage.wdir), monkeypatch)
        for out in stage.outs:
            assert Path(out.fs_path).exists(), f"{stage.addressing} did not write {out}"

    for run in ("tgrpo-0", "grpo-0"):
        assert len((toy_dir / "runs" / run / "rl.csv").read_text().splitlines()) == 1 + 3
        metrics = json.loads((toy_dir / "runs" / run / "eval.json").read_text())
        assert set(metrics["frames"]) == {"8", "16"} and {"order", "static", "long"} <= set(metrics["frames"]["8"])
    summary = json.loads((toy_dir / "metrics" / "toy.json").read_text())
    report = (toy_dir.parent / "reports" / "toy.md").read_text()
    pair = summary["tgrpo_vs_grpo"]["per_seed"]["0"]
    tgrpo = json.loads((toy_dir / "runs" / "tgrpo-0" / "eval.json").read_text())["frames"]["8"]["order"]["score"]
    grpo = json.loads((toy_dir / "runs" / "grpo-0" / "eval.json").read_text())["frames"]["8"]["order"]["score"]
    assert (pair["tgrpo"], pair["grpo"], pair["difference"]) == (tgrpo, grpo, round(tgrpo - grpo, 2))
    assert f"| 0 | {tgrpo:.1f} | {grpo:.1f} | {tgrpo - grpo:+.1f} |" in report
    for key in ("accuracy_trend", "length_shape", "tgrpo_vs_grpo", "frames"):
        verdict = summary[key]["verdict"]
        assert verdict in ("reproduced", "partly reproduced", "not reproduced") and f"**{verdict}**" in report
    figures = sorted(p.name for p in (toy_dir.parent / "reports" / "toy-figures").glob("*.png"))
    assert figures == [
        "accuracy.png",
        "followup_bonus.png",
        "frames.png",
        "kl.png",
        "length.png",
        "order_paired.png",
        "shuffled_accuracy.png",
        "temporal_bonus.png",
    ]
    assert summary["followup"]["tgrpo_a1"]["order"]["per_seed"]["0"]["grpo"] == grpo
