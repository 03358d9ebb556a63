"""DVC stage `eval`: reports/eval.md from metrics/eval_<model>.json, the paper's numbers beside ours."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from videor1.eval import render_eval_report
from videor1.io import write_text

from .params import load_params, stage_params

OUT = Path("reports/eval.md")


def main() -> None:
    params = load_params()
    p = stage_params("eval_report")
    evals = []
    for model in params["eval_models"]:
        f = Path("metrics") / f"eval_{model}.json"
        if not f.is_file():
            sys.exit(f"eval report: {f} does not exist (run `dvc repro evaluate@{model}`)")
        evals.append(json.loads(f.read_text()))
    paper_frames = {int(k): int(v) for k, v in (p.get("paper_frames") or {}).items()}
    paper_rows = dict(p.get("paper_rows") or {})
    rl_metrics = Path("metrics/rl.json")
    if (
        "rl" in paper_rows
        and "grpo" in paper_rows
        and rl_metrics.is_file()
        and json.loads(rl_metrics.read_text()).get("temporal") is False
    ):
        paper_rows["rl"] = paper_rows["grpo"]  # `rl.train.temporal: false` trained the GRPO ablation
    notes = list(p.get("notes") or [])
    write_text(
        OUT,
        render_eval_report(
            evals,
            paper_models=paper_rows,
            paper_frames=paper_frames,
            title=f"Evaluation ({params['profile']} profile)",
            notes=notes,
        ),
    )
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
