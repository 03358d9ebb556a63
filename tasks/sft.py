"""DVC stage `sft`: the SFT cold start of models/base on data/cot_filtered.parquet -> models/sft; and the toy's
`perceive` (`python -m tasks.sft --stage perceive`, issue 26): the same training on a synth stream's direct
answers (no CoT) -> models/perceived, the perception a real base brings to the cold start.

Checkpoints go to models/<stage>-checkpoints every `train.save_steps` steps; a killed run
(kill -9 included) resumes from the newest complete one. On several GPUs the stage
relaunches itself under torchrun (`nproc` in params.yaml), so `dvc repro sft` is the
one command on a laptop and on a node.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import torch

from videor1.curves import window_mean, write_curve
from videor1.data.schema import COT_FILTERED_SCHEMA
from videor1.distributed import barrier, init_world, relaunch
from videor1.io import atomic_path, write_json, write_run_record
from videor1.models import family_of, load_model, load_processor, model_signature
from videor1.params import result_params
from videor1.sft import SftCollator, SftDataset, SftTrainer, last_complete_checkpoint, loss_curve, peak_memory_mb
from videor1.store import fingerprint

from .params import config, set_threads
from .tables import read_stage_table
from .training import prepare_checkpoints

IN_TABLE = Path("data/cot_filtered.parquet")
CURVE_FIELDS = ["step", "epoch", "loss", "learning_rate", "grad_norm"]


@dataclass(frozen=True)
class Stage:
    """What one training stage reads and writes (checkpoints: working state, kept across runs, ignored by git)."""

    name: str
    rows: Callable[[object], list[dict]]
    model: Path
    checkpoints: Path
    plot: Path
    metrics: Path


def cot_rows(cfg) -> list[dict]:
    return read_stage_table("sft", IN_TABLE, COT_FILTERED_SCHEMA, made_by="filter").to_dicts()


def direct_rows(cfg) -> list[dict]:
    """A synth rows file as direct answers: no process, so the assistant turn is the solution alone."""
    try:
        rows = json.loads(Path(cfg.rows).read_text())
    except (FileNotFoundError, json.JSONDecodeError) as err:
        sys.exit(f"perceive: rows: {cfg.rows}: {err}")
    return [{**r, "media_root": cfg.media_root, "process": None} for r in rows]


STAGES = {
    "sft": Stage(
        "sft",
        cot_rows,
        Path("models/sft"),
        Path("models/sft-checkpoints"),
        Path("plots/sft_loss.csv"),
        Path("metrics/sft.json"),
    ),
    "perceive": Stage(
        "perceive",
        direct_rows,
        Path("models/perceived"),
        Path("models/perceive-checkpoints"),
        Path("plots/perceive_loss.csv"),
        Path("metrics/perceive.json"),
    ),
}


def first_readable(dataset, stage: str) -> dict:
    for i in range(len(dataset)):
        if (example := dataset[i])["error"] is None:
            return example
    sys.exit(f"{stage}: no row's media can be read")


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tasks.sft", description="SFT of a base model")
    ap.add_argument("--stage", choices=sorted(STAGES), default="sft")
    stage = STAGES[ap.parse_args(sys.argv[1:] if argv is None else argv).stage]
    cfg = config(stage.name)
    relaunch(cfg.nproc, "tasks.sft")
    world = init_world()
    set_threads(cfg.threads)
    rows = stage.rows(cfg)
    base = Path(cfg.base_model)
    try:
        processor = load_processor(base)
        model = load_model(base, dtype=getattr(torch, cfg.model_dtype), attn_implementation=cfg.attn_implementation)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"{stage.name}: {err}")
    run_id = fingerprint(
        {
            "params": result_params(cfg),
            "rows": [(r["problem_id"], r["process"], r["solution"], r["path"]) for r in rows],
            "base": model_signature(base),
        }
    )
    if world.is_main:
        prepare_checkpoints(stage.checkpoints, run_id, stage.name)
    barrier(world)  # no rank looks for a checkpoint rank 0 may still be deleting
    dataset = SftDataset(rows, family_of(base).media_rules(cfg.media))
    placeholder = first_readable(dataset, stage.name) if world.distributed else None
    collator = SftCollator(processor, max_length=cfg.max_length, placeholder=placeholder)
    args = replace(cfg.train, output_dir=str(stage.checkpoints)).training_arguments()
    trainer = SftTrainer(model=model, args=args, train_dataset=dataset, data_collator=collator)
    collator.on_skip = trainer.log_skip
    resume = last_complete_checkpoint(stage.checkpoints)
    if resume:
        print(f"{stage.name}: resuming from {resume}")
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    staging = stage.checkpoints / "final-model"
    trainer.save_model(str(staging))  # every rank: under ZeRO-3 the full weights are gathered collectively
    barrier(world)
    if not world.is_main:
        return
    with atomic_path(stage.model) as tmp:
        os.replace(staging, tmp)
        processor.save_pretrained(tmp)
    curve = loss_curve(trainer.state.log_history)
    write_curve(stage.plot, curve, CURVE_FIELDS)
    losses = [c["loss"] for c in curve]
    window = max(1, len(losses) // 10)
    write_json(
        stage.metrics,
        {
            "rows": len(rows),
            "steps": trainer.state.global_step,
            "epochs": round(trainer.state.epoch or 0.0, 3),
            "loss_first_window": window_mean(losses, window, last=False),
            "loss_last_window": window_mean(losses, window, last=True),
            "window_steps": window,
            "skipped_rows": trainer.skip_log.read_text().count("\n") if trainer.skip_log.exists() else 0,
        },
    )
    resumed_from = int(resume.name.split("-")[1]) if resume else 0
    steps_now = trainer.state.global_step - resumed_from
    write_run_record(  # throughput and memory of this process: null when it resumed at the end and trained nothing
        stage.name,
        {
            "resumed_from_step": resumed_from,
            "steps_this_run": steps_now,
            "train_samples_per_second": result.metrics.get("train_samples_per_second") if steps_now else None,
            "train_runtime_s": result.metrics.get("train_runtime"),
            "peak_memory_mb": round(peak_memory_mb(), 1) if steps_now else None,
        },
    )
    print(f"{stage.name}: {trainer.state.global_step} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f} -> {stage.model}")


if __name__ == "__main__":
    main()
