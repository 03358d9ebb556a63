"""Benchmark scoring of spec section 6: MRA, answer extraction, summaries, the report and `videor1 score`."""

from __future__ import annotations

import json

import pytest

from videor1.cli import main as cli
from videor1.eval import mean_relative_accuracy, render_eval_report, score_prediction, summarize


@pytest.mark.parametrize(
    "pred, target, mra",
    [
        (10, 10, 1.0),
        (9.5, 10, 0.9),  # 5 % off: inside every threshold but 0.95 (strict "<"), exact despite 1 - 0.95 in floats
        (0.95, 1.0, 0.9),
        (9, 10, 0.8),
        (11, 10, 0.8),
        (5.5, 10, 0.1),  # 45 % off: only θ = 0.50
        (5, 10, 0.0),  # 50 % off: no threshold
        (-9, -10, 0.8),  # negative target
        (9, -10, 0.0),
        (0, 0, 1.0),  # zero target: exact only
        (0.1, 0, 0.0),
        (float("nan"), 10, 0.0),
        (10, float("inf"), 0.0),
    ],
)
def test_mean_relative_accuracy(pred, target, mra):
    assert mean_relative_accuracy(pred, target) == pytest.approx(mra)


@pytest.mark.parametrize(
    "output, solution, ptype, score",
    [
        ("<think>hmm</think><answer>B</answer>", "<answer>B</answer>", "multiple choice", 1.0),
        ("B", "<answer>B</answer>", "multiple choice", 1.0),  # no tag: the whole output
        ("  B \n", "<answer>B</answer>", "multiple choice", 1.0),
        ("The answer is B", "<answer>B</answer>", "multiple choice", 0.0),
        ("<answer>A</answer> <answer>B</answer>", "<answer>B</answer>", "multiple choice", 0.0),  # first tag
        ("<answer>3</answer>", "<answer>3.0</answer>", "numerical", 0.0),
        ("3", "<answer>3</answer>", "numerical", 1.0),
        ("<answer>9</answer>", "<answer>10</answer>", "regression", 0.8),
        ("9.5", "<answer>10</answer>", "regression", 0.9),
        ("<answer>1,000</answer>", "<answer>1000</answer>", "regression", 1.0),
        ("<answer>0</answer>", "<answer>0</answer>", "regression", 1.0),  # MRA: exact zero is exact
        ("about 9", "<answer>10</answer>", "regression", 0.0),
        ("", "<answer>B</answer>", "multiple choice", 0.0),
        ("<answer>a b</answer>", "<answer>a b</answer>", "OCR", 1.0),
        ("B", "<answer>B</answer>", "unknown type", 0.0),
    ],
)
def test_score_prediction(output, solution, ptype, score):
    assert score_prediction(output, solution, ptype) == pytest.approx(score)


def row(pid, output, solution="<answer>B</answer>", ptype="multiple choice", source="t/a", **extra):
    return {
        "problem_id": pid,
        "output": output,
        "solution": solution,
        "problem_type": ptype,
        "data_source": source,
        **extra,
    }


def vsi_rows():
    return [
        row(1, "B", source="t/a"),
        row(2, "A", source="t/a"),
        row(3, None, source="t/a", error="video x.mp4: moov atom not found"),
        row(4, "9", "<answer>10</answer>", "regression", source="t/b"),
    ]


def test_vsibench_averages_its_task_scores():
    s = summarize("VSI-Bench", vsi_rows())
    assert s.tasks == {"t/a": 0.5, "t/b": pytest.approx(0.8)}
    assert s.score == pytest.approx(0.65)  # (0.5 + 0.8) / 2, not the row mean (1 + 0 + 0.8) / 3
    assert s.accuracy == 0.5 and s.mra == pytest.approx(0.8)
    assert s.rows == 4 and s.scored == 3
    assert s.failed == [{"problem_id": 3, "error": "video x.mp4: moov atom not found"}]
    assert s.score_failed_as_wrong == pytest.approx((1 / 3 + 0.8) / 2)


def test_other_benchmarks_take_the_row_mean_and_list_failures():
    s = summarize("mvbench", [row(1, "B"), row(2, "A"), row(3, None, error="unreadable")])
    assert s.tasks == {}
    assert s.score == 0.5 and s.score_failed_as_wrong == pytest.approx(1 / 3)
    assert s.failed[0]["problem_id"] == 3


def test_task_field_is_configurable():
    rows = [row(1, "B", question_type="x"), row(2, "A", question_type="y"), row(3, "B", question_type="y")]
    s = summarize("vsibench", rows, task_field="question_type")
    assert s.tasks == {"x": 1.0, "y": 0.5} and s.score == 0.75


def eval_metrics(model, scores, failed=0):
    per = {
        b: {"score": v, "failed": failed, "failed_rows": [{"problem_id": 7, "error": "bad video"}] * failed}
        for b, v in scores.items()
    }
    per["mean"] = sum(scores.values()) / len(scores)
    return {"model": model, "frames": {"16": per}}


def test_report_puts_the_paper_beside_ours_and_lists_failures():
    scores = {
        "vsibench": 31.0,
        "videommmu": 45.0,
        "mmvu": 60.0,
        "mvbench": 58.25,
        "tempcompass": 70.0,
        "videomme": 50.0,
    }
    md = render_eval_report(
        [eval_metrics("base", scores), eval_metrics("rl", scores, failed=1)],
        paper_models={"base": "Qwen2.5-VL-7B (CoT)", "rl": "Video-R1-7B"},
        notes=["a note"],
    )
    lines = md.splitlines()
    header = next(line for line in lines if line.startswith("| model"))
    assert header.split(" | ")[4:10] == [
        "VSI-Bench",
        "VideoMMMU",
        "MMVU (mc)",
        "MVBench",
        "TempCompass",
        "VideoMME (wo sub)",
    ]
    base = next(line for line in lines if line.startswith("| base"))
    assert "| 16 | Qwen2.5-VL-7B (CoT) @ 16 | 31.0 (27.7) | 45.0 (47.8) |" in base
    assert "58.2 (57.4)" in base or "58.3 (57.4)" in base
    rl = next(line for line in lines if line.startswith("| rl"))
    assert "31.0†1 (34.6)" in rl
    assert "- rl @ 16 frames, VSI-Bench, problem 7: bad video" in md
    assert "a note" in md


def test_report_without_a_matching_paper_row_shows_ours_alone():
    md = render_eval_report([eval_metrics("mine", {"mvbench": 40.0})], paper_models={})
    line = next(line for line in md.splitlines() if line.startswith("| mine"))
    assert "| — |" in line and "40.0" in line and "(" not in line


def test_cli_scores_a_predictions_file(tmp_path, capsys):
    f = tmp_path / "vsibench@16.jsonl"
    f.write_text("".join(json.dumps(r) + "\n" for r in vsi_rows()))
    assert cli(["score", str(f), "--json"]) == 0
    [summary] = json.loads(capsys.readouterr().out)
    assert summary["benchmark"] == "vsibench" and summary["score"] == pytest.approx(0.65)
    assert cli(["score", str(f)]) == 0
    out = capsys.readouterr().out
    assert "65.0" in out and "moov atom not found" in out


def test_cli_rejects_rows_without_the_needed_fields(tmp_path, capsys):
    f = tmp_path / "p.jsonl"
    f.write_text(json.dumps({"output": "B"}) + "\n")
    assert cli(["score", str(f)]) == 2
    assert "p.jsonl:1: missing problem_type, solution" in capsys.readouterr().err
