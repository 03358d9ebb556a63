"""Two SFT steps of the tiny model on however many processes torchrun starts (transformers' Trainer: DDP).

    torchrun --nproc_per_node=N tests/dist/sft_step.py MODEL_DIR SYNTH_DIR OUT.pt GLOBAL_BATCH [BROKEN_ID|-] [DEEPSPEED]

Each step takes GLOBAL_BATCH rows (GLOBAL_BATCH / N per process). BROKEN_ID: that row's media cannot be read,
so a process whose micro-batch holds only it runs the collator's placeholder (weight 0). Rank 0 saves the
logged losses and grad norms, the updated weights, and the skip log for tests/test_distributed.py.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch

import videor1  # noqa: F401
from videor1.distributed import init_world
from videor1.media import MediaRules
from videor1.models import load_model, load_processor
from videor1.sft import SftCollator, SftConfig, SftDataset, SftTrainer

RULES = MediaRules(max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056)


def main(model_dir: str, synth: str, out: str, global_batch: str, broken_id: str = "-", deepspeed: str | None = None) -> None:
    torch.set_num_threads(1)
    world = init_world()
    processor = load_processor(model_dir)
    rows = [{**r, "media_root": synth, "process": f"<think>It is {r['solution']}.</think>"}
            for r in json.loads((Path(synth) / "train.json").read_text())]
    placeholder = SftDataset(rows, RULES)[0] if world.distributed else None
    if broken_id != "-":
        rows = [{**r, "media_root": "/nowhere"} if str(r["problem_id"]) == broken_id else r for r in rows]
    with tempfile.TemporaryDirectory() as tmp:
        cfg = SftConfig(output_dir=tmp, max_steps=2, learning_rate=1e-3, warmup_steps=0,
                        per_device_batch_size=int(global_batch) // world.size, gradient_accumulation_steps=1, bf16=False,
                        gradient_checkpointing=False, deepspeed=deepspeed, use_cpu=True, save_steps=1000, logging_steps=1, seed=0)
        trainer = SftTrainer(model=load_model(model_dir), args=cfg.training_arguments(), train_dataset=SftDataset(rows, RULES),
                             data_collator=SftCollator(processor, placeholder=placeholder, on_skip=None))
        trainer.data_collator.on_skip = trainer.log_skip
        trainer.train()
        skipped = trainer.skip_log.read_text().splitlines() if trainer.skip_log.exists() else []
    history = [h for h in trainer.state.log_history if "loss" in h]
    if world.is_main:
        torch.save({"loss": [h["loss"] for h in history], "grad_norm": [h["grad_norm"] for h in history],
                    "weights": {k: v.detach().clone() for k, v in trainer.model.state_dict().items()},
                    "skipped": [json.loads(s) for s in skipped], "world": world.size}, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
