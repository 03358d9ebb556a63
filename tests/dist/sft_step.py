"""Two SFT steps of the tiny model on however many processes torchrun starts (transformers' Trainer).

    torchrun --nproc_per_node=N tests/dist/sft_step.py MODEL_DIR SYNTH_DIR OUT.pt ENGINE RUN [RUN ...]

ENGINE: ddp (Trainer's default; on one process, plain training), zero2 or zero3 (DeepSpeed). Each RUN is
GLOBAL_BATCH or GLOBAL_BATCH:BROKEN_ID[,BROKEN_ID...], trained in turn from the same weights in this one launch
(a launch costs more than two tiny steps). Each step takes GLOBAL_BATCH rows (GLOBAL_BATCH / N per process); the
broken rows' media cannot be read, so a process whose micro-batch holds only broken rows runs the collator's
placeholder (weight 0). Rank 0 saves {RUN: the logged losses and grad norms, the updated (full) weights, the
skip log} for tests/test_distributed.py.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

import videor1  # noqa: F401
from videor1.distributed import barrier, init_world
from videor1.media import MediaRules
from videor1.models import load_model, load_processor
from videor1.sft import SftCollator, SftConfig, SftDataset, SftTrainer

RULES = MediaRules(max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056)


def train(world, model_dir: str, synth: str, processor, engine: str, run: str) -> dict:
    global_batch, _, broken = run.partition(":")
    broken_ids = set(broken.split(",")) if broken else set()
    rows = [{**r, "media_root": synth, "process": f"<think>It is {r['solution']}.</think>"}
            for r in json.loads((Path(synth) / "train.json").read_text())]
    placeholder = SftDataset(rows, RULES)[0] if world.distributed else None
    rows = [{**r, "media_root": "/nowhere"} if str(r["problem_id"]) in broken_ids else r for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SftConfig(output_dir=tmp, max_steps=2, learning_rate=1e-3, warmup_steps=0,
                        per_device_batch_size=int(global_batch) // world.size, gradient_accumulation_steps=1, bf16=False,
                        gradient_checkpointing=False, deepspeed=None if engine == "ddp" else engine, use_cpu=True,
                        save_steps=1000, logging_steps=1, seed=0)
        trainer = SftTrainer(model=load_model(model_dir), args=cfg.training_arguments(), train_dataset=SftDataset(rows, RULES),
                             data_collator=SftCollator(processor, placeholder=placeholder, on_skip=None))
        trainer.data_collator.on_skip = trainer.log_skip
        trainer.train()
        skipped = trainer.skip_log.read_text().splitlines() if trainer.skip_log.exists() else []
    if engine == "zero3":  # the parameters are shards: gather the full weights (every rank takes part; rank 0 gets them)
        weights = trainer.accelerator.get_state_dict(trainer.model_wrapped)
    else:
        weights = trainer.model.state_dict()
    history = [h for h in trainer.state.log_history if "loss" in h]
    return {"loss": [h["loss"] for h in history], "grad_norm": [h["grad_norm"] for h in history],
            "weights": {k: v.detach().clone() for k, v in (weights or {}).items()},
            "skipped": [json.loads(s) for s in skipped], "world": world.size}


def main(model_dir: str, synth: str, out: str, engine: str, *runs: str) -> None:
    torch.set_num_threads(1)
    world = init_world()
    processor = load_processor(model_dir)
    results = {run: train(world, model_dir, synth, processor, engine, run) for run in runs}
    if world.is_main:
        torch.save(results, out)
    if world.distributed:  # leave together: a rank exiting while DeepSpeed's gloo work is live aborts (seen once)
        barrier(world)
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main(*sys.argv[1:])
