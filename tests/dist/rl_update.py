"""One T-GRPO update of the tiny model on fixed groups, on however many processes torchrun starts.

    torchrun --nproc_per_node=N tests/dist/rl_update.py MODEL_DIR SYNTH_DIR OUT.pt

Rank r takes groups r, r + N, ...; with N > 1 policy and reference are FSDP2-sharded. Once with fp32
compute, once with bf16 autocast; rank 0 saves each update's loss, KL, grad norm and full updated weights.
"""

from __future__ import annotations

import copy
import json
import sys
import tempfile
from pathlib import Path

import torch

import videor1  # noqa: F401
from videor1.distributed import full_state_dict, init_world, shard_model
from videor1.generation import Completion
from videor1.media import MediaRules, load_medium
from videor1.models import load_model, load_processor
from videor1.rl import RLConfig, RLTrainer
from videor1.rl.rollout import Group, prompt_inputs

RULES = MediaRules(max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056)


def fixed_groups(processor, synth: Path) -> tuple[list[Group], list[torch.Tensor]]:
    rows = [{**r, "media_root": str(synth)} for r in json.loads((synth / "train.json").read_text())]
    chosen = [r for r in rows if r["data_type"] == "video"][:2] + [r for r in rows if r["data_type"] == "image"][:2]
    groups, advantages = [], []
    for k, row in enumerate(chosen):
        medium = load_medium(synth / row["path"], row["data_type"], RULES)
        completions = [Completion("", [5 + k, 6, 7 + k, 8][: 4 - j % 3], False) for j in range(4)]
        groups.append(Group(row, prompt_inputs(processor, row, medium), completions, [], None))
        advantages.append(torch.tensor([1.0, -0.5, 0.5, 0.25]) * (k + 1))
    return groups, advantages


def update(model_dir: str, synth: str, world, compute_dtype: str) -> dict:
    processor = load_processor(model_dir)
    model = load_model(model_dir)
    ref = copy.deepcopy(model).requires_grad_(False)
    model, ref = shard_model(model, world, compute_dtype), shard_model(ref, world, compute_dtype)
    groups, advantages = fixed_groups(processor, Path(synth))
    cfg = RLConfig(steps=1, learning_rate=1e-3, max_grad_norm=1e9, compute_dtype=compute_dtype, beta=0.04)
    with tempfile.TemporaryDirectory() as tmp:
        trainer = RLTrainer(model, ref, processor, None, [], RULES, cfg, tmp, log=lambda _: None, world=world)
        result = trainer.update(groups[world.rank::world.size], advantages[world.rank::world.size])
    weights = {k: v.detach().float().cpu().clone() for k, v in full_state_dict(model, world).items()}
    return {**result, "weights": weights}


def main(model_dir: str, synth: str, out: str) -> None:
    torch.set_num_threads(1)
    world = init_world()
    results = {dtype: update(model_dir, synth, world, dtype) for dtype in ("float32", "bfloat16")}
    if world.is_main:
        torch.save({**results, "world": world.size}, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
