"""DVC stage `report` of the toy reproduction (toy/dvc.yaml): reports/toy.md and reports/toy-figures/*.png.

Run in toy/: reads experiment.runs from params.yaml, each run's runs/<name>/{rl.csv, rl.json, eval.json, eval/},
and the SFT and base models' evals; judges the four observations by the rules registered before the runs
(docs/toy-preregistration.md; videor1.reports.toy). Every number in the report comes from those files.
"""

from __future__ import annotations

import sys
from pathlib import Path

from videor1.io import write_json, write_text
from videor1.reports.toy import analyze, load_inputs
from videor1.reports.toy_figures import draw_figures
from videor1.reports.toy_markdown import render_markdown

from .params import config, load_params

OUT = Path("../reports/toy.md")
FIGURES = Path("../reports/toy-figures")
SUMMARY = Path("metrics/toy.json")  # the verdicts and numbers as data, beside the report


def main() -> None:
    experiment = config("toy_report").experiment  # checked before any work
    params = load_params()  # the design's numbers the report quotes (model widths, steps, lr), as written
    toy = params[params["profile"]]
    names = [*experiment.runs, *experiment.followup]
    missing = [n for n in names if not (Path("runs") / n / "eval.json").is_file()]
    if missing:
        sys.exit(f"toy_report: runs without an eval yet: {missing} (`cd toy && dvc repro` runs them)")

    inputs = load_inputs(Path("."), toy, experiment)
    report = analyze(inputs)
    figures = draw_figures(report, inputs.runs, inputs.followups, FIGURES)
    links = {name: path.relative_to(OUT.parent).as_posix() for name, path in figures.items()}
    write_text(OUT, render_markdown(report, links))
    write_json(SUMMARY, report.metrics)
    verdicts = [report.metrics[k]["verdict"] for k in ("accuracy_trend", "length_shape", "tgrpo_vs_grpo", "frames")]
    print(f"toy_report: {OUT} ({', '.join(verdicts)})")


if __name__ == "__main__":
    main()
