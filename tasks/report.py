"""DVC stage `report`: reports/summary.md and its PNG curves from every stage's metrics and plots."""

from __future__ import annotations

import json
import sys
import textwrap
from collections import Counter
from pathlib import Path

from videor1.io import write_text
from videor1.reports import plot_curves, read_curve, render_summary

from .params import load_params

OUT = Path("reports/summary.md")
FIGURES = Path("reports/figures")


def _json(path: str) -> dict:
    p = Path(path)
    if not p.is_file():
        sys.exit(f"report: {p} does not exist (run `dvc repro`)")
    return json.loads(p.read_text())


def quarantine_reasons(path: Path) -> dict[str, int]:
    if not path.is_file():
        return {}
    counts = Counter()
    for line in path.read_text().splitlines():
        q = json.loads(line)
        counts[f"{q['step']}: {textwrap.shorten(q['cause'], 90, placeholder=' …')}"] += 1
    return dict(counts)


def main() -> None:
    params = load_params()
    figures = {
        "SFT training loss": plot_curves(
            read_curve("plots/sft_loss.csv"), "step", ["loss"], FIGURES / "sft_loss.png", title="SFT loss"
        ),
    }
    rl_rows = read_curve("plots/rl.csv")
    window = max(1, len(rl_rows) // 10)
    figures["RL reward, accuracy, format"] = plot_curves(
        rl_rows,
        "step",
        ["reward", "accuracy", "format"],
        FIGURES / "rl_reward.png",
        title="RL rewards",
        smooth_window=window,
    )
    figures["RL completion length"] = plot_curves(
        rl_rows,
        "step",
        ["completion_length"],
        FIGURES / "rl_length.png",
        title="RL completion length (tokens)",
        smooth_window=window,
    )
    figures["RL temporal bonus and KL"] = plot_curves(
        rl_rows,
        "step",
        ["temporal_fired", "kl"],
        FIGURES / "rl_temporal_kl.png",
        title="share of video groups with the temporal bonus; KL",
        smooth_window=window,
    )
    text = render_summary(
        profile=params["profile"],
        collect=_json("metrics/collect.json"),
        quarantine_reasons=quarantine_reasons(Path("data/quarantine.jsonl")),
        cot=_json("metrics/cot.json"),
        filter_=_json("metrics/filter.json"),
        sft=_json("metrics/sft.json"),
        rl=_json("metrics/rl.json"),
        eval_table=Path("reports/eval.md").read_text() if Path("reports/eval.md").is_file() else "(no eval report)",
        figures={caption: str(path.relative_to(OUT.parent)) for caption, path in figures.items()},
    )
    write_text(OUT, text)
    print(f"wrote {OUT} and {len(figures)} figures in {FIGURES}")


if __name__ == "__main__":
    main()
