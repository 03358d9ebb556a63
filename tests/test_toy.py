"""The toy reproduction (toy/dvc.yaml, reports/toy.md) at smoke size: every stage command of the file, two runs,
and a report whose numbers must be the metrics files' numbers. The full run (`dvc repro toy/dvc.yaml`, about
an hour on 2 cores) is not CI's."""

from __future__ import annotations

import json
import runpy
import shlex
import shutil
import sys
from pathlib import Path

import pytest
import yaml

from .conftest import REPO


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
