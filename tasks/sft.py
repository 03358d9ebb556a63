"""DVC stage `sft`: the SFT cold start of models/base on data/cot_filtered.parquet -> models/sft.

Checkpoints go to models/sft-checkpoints every `train.save_steps` steps; a killed run
(kill -9 included) resumes from the newest complete one. On several GPUs the stage
relaunches itself under torchrun (`nproc` in params.yaml), so `dvc repro sft` is the
one command on a laptop and on a node.
"""

from __future__ import annotations

import csv
import io
import os
import shutil
import sys
from pathlib import Path

import torch

from videor1.data.schema import COT_FILTERED_SCHEMA
from videor1.distributed import barrier, init_world, relaunch
from videor1.io import atomic_path, write_json, write_text
from videor1.media import MediaRules
from videor1.models import check_attention, load_model, load_processor, model_signature
from videor1.sft import (
    SftCollator,
    SftConfig,
    SftDataset,
    SftTrainer,
    last_complete_checkpoint,
    loss_curve,
    peak_memory_mb,
)
from videor1.store import fingerprint

from .params import result_params, set_threads, stage_params
from .tables import read_stage_table

IN_TABLE = Path("data/cot_filtered.parquet")
OUT_MODEL = Path("models/sft")
CHECKPOINTS = Path("models/sft-checkpoints")
OUT_PLOT = Path("plots/sft_loss.csv")
OUT_METRICS = Path("metrics/sft.json")


def first_readable(dataset) -> dict:
    for i in range(len(dataset)):
        if (example := dataset[i])["error"] is None:
            return example
    sys.exit("sft: no row's media can be read")


def prepare_checkpoints(run_id: str) -> None:
    """Keep checkpoints only when they belong to this configuration; a changed one starts over."""
    marker = CHECKPOINTS / "run.json"
    if CHECKPOINTS.exists() and (not marker.exists() or marker.read_text().strip() != run_id):
        print(f"sft: {CHECKPOINTS} holds another configuration's checkpoints; starting over")
        shutil.rmtree(CHECKPOINTS)
    CHECKPOINTS.mkdir(parents=True, exist_ok=True)
    write_text(marker, run_id + "\n")


def window_mean(values: list[float], n: int, last: bool) -> float | None:
    part = values[-n:] if last else values[:n]
    return sum(part) / len(part) if part else None


def write_plot(curve: list[dict]) -> None:
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=["step", "epoch", "loss", "learning_rate", "grad_norm"])
    writer.writeheader()
    writer.writerows(curve)
    write_text(OUT_PLOT, buf.getvalue())


def main() -> None:
    p = stage_params("sft")
    try:
        check_attention(p.get("attn_implementation", "sdpa"))
    except ValueError as err:
        sys.exit(f"sft: {err}")
    relaunch(int(p.get("nproc", 1)), "tasks.sft")
    world = init_world()
    set_threads(p.get("threads", 1))
    rows = read_stage_table("sft", IN_TABLE, COT_FILTERED_SCHEMA, made_by="filter").to_dicts()
    base = Path(p["base_model"])
    if p.get("model_dtype", "float32") != "float32" and not p["train"].get("deepspeed"):
        sys.exit(
            f"sft: model_dtype {p['model_dtype']} without DeepSpeed would train {p['model_dtype']} weights directly, and "
            "updates of ~1e-6 vanish below their spacing; keep model_dtype: float32 (the master weights) with "
            "train.bf16: true (bf16 compute), or use DeepSpeed, which keeps fp32 master weights itself"
        )
    try:
        processor = load_processor(base)
        model = load_model(
            base,
            dtype=getattr(torch, p.get("model_dtype", "float32")),
            attn_implementation=p.get("attn_implementation", "sdpa"),
        )
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"sft: {err}")
    cfg = SftConfig(output_dir=str(CHECKPOINTS), **p["train"])
    run_id = fingerprint(
        {
            "params": result_params(p),
            "rows": [(r["problem_id"], r["process"], r["solution"], r["path"]) for r in rows],
            "base": model_signature(base),
        }
    )
    if world.is_main:
        prepare_checkpoints(run_id)
    barrier(world)  # no rank looks for a checkpoint rank 0 may still be deleting
    dataset = SftDataset(rows, MediaRules(**p["media"]))
    collator = SftCollator(
        processor, max_length=p.get("max_length"), placeholder=first_readable(dataset) if world.distributed else None
    )
    trainer = SftTrainer(model=model, args=cfg.training_arguments(), train_dataset=dataset, data_collator=collator)
    collator.on_skip = trainer.log_skip
    resume = last_complete_checkpoint(CHECKPOINTS)
    if resume:
        print(f"sft: resuming from {resume}")
    result = trainer.train(resume_from_checkpoint=str(resume) if resume else None)
    staging = CHECKPOINTS / "final-model"
    trainer.save_model(str(staging))  # every rank: under ZeRO-3 the full weights are gathered collectively
    barrier(world)
    if not world.is_main:
        return
    with atomic_path(OUT_MODEL) as tmp:
        os.replace(staging, tmp)
        processor.save_pretrained(tmp)
    curve = loss_curve(trainer.state.log_history)
    write_plot(curve)
    losses = [c["loss"] for c in curve]
    window = max(1, len(losses) // 10)
    resumed_from = int(resume.name.split("-")[1]) if resume else 0
    steps_now = trainer.state.global_step - resumed_from
    skipped = trainer.skip_log.read_text().count("\n") if trainer.skip_log.exists() else 0
    write_json(
        OUT_METRICS,
        {
            "rows": len(rows),
            "steps": trainer.state.global_step,
            "epochs": round(trainer.state.epoch or 0.0, 3),
            "loss_first_window": window_mean(losses, window, last=False),
            "loss_last_window": window_mean(losses, window, last=True),
            "window_steps": window,
            # throughput and memory of this process: null when it resumed from the final checkpoint and trained nothing
            "steps_this_run": steps_now,
            "train_samples_per_second": result.metrics.get("train_samples_per_second") if steps_now else None,
            "train_runtime_s": result.metrics.get("train_runtime"),
            "peak_memory_mb": round(peak_memory_mb(), 1) if steps_now else None,
            "skipped_rows": skipped,
            "resumed_from_step": resumed_from,
        },
    )
    print(f"sft: {trainer.state.global_step} steps, loss {losses[0]:.3f} -> {losses[-1]:.3f} -> {OUT_MODEL}")


if __name__ == "__main__":
    main()
