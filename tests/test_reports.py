"""The summary report and its PNG curves."""

from __future__ import annotations

from videor1.reports import plot_curves, read_curve, render_summary, smooth


def test_smooth_is_a_trailing_mean_over_known_values():
    assert smooth([1.0, 3.0, None, 5.0], 2) == [1.0, 2.0, 3.0, 5.0]


def test_curves_render_to_png(tmp_path):
    csv = tmp_path / "rl.csv"
    csv.write_text("step,reward,kl\n1,0.5,\n2,1.0,0.01\n3,1.5,0.02\n")
    rows = read_curve(csv)
    assert rows[0] == {"step": 1.0, "reward": 0.5, "kl": None}
    png = plot_curves(rows, "step", ["reward", "kl"], tmp_path / "fig" / "rl.png", title="t", smooth_window=2)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_summary_has_every_stage_in_numbers():
    md = render_summary(
        profile="tiny",
        collect={
            "rows": 10,
            "quarantined": 2,
            "by_data_type": {"image": 4, "video": 6},
            "by_problem_type": {"OCR": 10},
            "balance": {
                "src/a": {"available": 8, "kept": 6, "weight": 0.75, "cap": None},
                "src/b": {"available": 4, "kept": 4, "weight": 1.0, "cap": 300},
            },
        },
        quarantine_reasons={"media: unreadable": 2},
        cot={
            "teacher": "scripted",
            "completed": 9,
            "rows_in": 10,
            "errors": 1,
            "errors_by_reason": {"unreadable media": 1},
        },
        filter_={"kept": 6, "rows_in": 9, "kept_share": 0.6667, "rules": {"format": {"removed": 3, "failed": 4}}},
        sft={
            "steps": 12,
            "epochs": 2.0,
            "rows": 6,
            "loss_first_window": 5.0,
            "loss_last_window": 1.0,
            "window_steps": 2,
            "skipped_rows": 0,
        },
        rl={
            "steps": 4,
            "temporal": True,
            "window_steps": 1,
            "reward_first_window": 0.5,
            "reward_last_window": 0.75,
            "temporal_fired_share": 0.5,
            "kl_last_window": 0.01,
            "seconds_per_step": 0.7,
        },
        eval_table="# Evaluation\n\n| model | frames |\n|---|---|\n| rl | 8 |\n",
        figures={"SFT loss": "figures/sft_loss.png"},
    )
    for expected in (
        "Collected **10** rows (image 4, video 6); quarantined **2**.",
        "| media: unreadable | 2 |",
        "Balancing kept 10 of 12 valid rows",
        "| src/a | 8 | 0.75 | — | 6 |",
        "| src/b | 4 | 1.0 | 300 | 4 |",
        "1 skipped (unreadable media: 1).",
        "kept **6** of 9 (66.7 %)",
        "| format | 3 | 4 |",
        "loss 5.000 (first 2 steps) → 1.000 (last 2)",
        "## RL (T-GRPO)",
        "| reward | 0.500 | 0.750 |",
        "![SFT loss](figures/sft_loss.png)",
        "| rl | 8 |",
    ):
        assert expected in md, expected
