"""DVC stage `eval`: reports/eval.md from metrics/eval_<model>.json, the paper's numbers beside ours."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from videor1.eval import render_eval_report
from videor1.io import write_text

from .params import config

OUT = Path("reports/eval.md")
RL_METRICS = Path("metrics/rl.json")


def main() -> None:
    cfg = config("eval_report", name="eval report")
    evals = []
    for model in cfg.models:
        f = Path("metrics") / f"eval_{model}.json"
        if not f.is_file():
            sys.exit(f"eval report: {f} does not exist (run `dvc repro evaluate@{model}`)")
        evals.append(json.loads(f.read_text()))
    paper_rows = dict(cfg.paper_rows)
    grpo = RL_METRICS.is_file() and json.loads(RL_METRICS.read_text()).get("temporal") is False
    if grpo and "rl" in paper_rows and "grpo" in paper_rows:
        paper_rows["rl"] = paper_rows["grpo"]  # `rl.train.temporal: false` trained the GRPO ablation
    report = render_eval_report(
        evals,
        paper_models=paper_rows,
        paper_frames=cfg.paper_frames,
        title=f"Evaluation ({cfg.profile} profile)",
        notes=list(cfg.notes),
    )
    write_text(OUT, report)
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
