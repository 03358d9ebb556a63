"""One T-GRPO update of the tiny model on fixed groups, on however many processes torchrun starts.

    torchrun --nproc_per_node=N tests/dist/rl_update.py MODEL_DIR SYNTH_DIR CLIP OUT.pt

Policy and reference load as the RL stage loads them (``load_sharded_models``: FSDP2-sharded as they load when
N > 1). The four groups are split over the ranks three ways: evenly (r, r + N, ...), unevenly (rank 0 all but
one) and all on rank 0 (the others have none, as when every row of theirs was skipped); one process takes all
four each time. Once with fp32 compute, once with bf16 autocast, once more in fp32 with gradient checkpointing
(uneven split); rank 0 saves each update's loss, KL, grad norm
and full updated weights.

CLIP: a video whose sampled frames are 4.575 s per temporal patch. The M-RoPE positions the sharded bf16
forward computes for it are saved beside those computed from its fp32 seconds directly.
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import torch
from torch.distributed.tensor import DTensor

import videor1  # noqa: F401
from videor1.distributed import full_state_dict, init_world, load_sharded_models
from videor1.generation import Completion
from videor1.media import MediaRules, load_medium
from videor1.models import load_processor
from videor1.rl import RLConfig, RLTrainer
from videor1.rl.policy import prompt_positions
from videor1.rl.rollout import Group, prompt_inputs

RULES = MediaRules(max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056)
LONG_CLIP_RULES = MediaRules(max_frames=16, video_min_pixels=3136, video_max_pixels=3136)


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


def share(n_groups: int, world, split: str) -> list[int]:
    """This rank's group indices under each split."""
    if split == "even":
        return list(range(world.rank, n_groups, world.size))
    if split == "uneven":  # rank 0 all but the last, the last rank the last one
        return list(range(n_groups - 1)) if world.rank == 0 else [n_groups - 1] if world.rank == world.size - 1 else []
    return list(range(n_groups)) if world.rank == 0 else []  # "one_rank"


def update(model_dir: str, synth: str, world, compute_dtype: str, split: str, checkpointing: bool = False) -> dict:
    processor = load_processor(model_dir)
    model, ref = load_sharded_models(model_dir, world, (torch.float32, getattr(torch, compute_dtype)), compute_dtype)
    ref.requires_grad_(False)
    groups, advantages = fixed_groups(processor, Path(synth))
    mine = share(len(groups), world, split) if world.distributed else list(range(len(groups)))
    cfg = RLConfig(steps=1, learning_rate=1e-3, max_grad_norm=1e9, compute_dtype=compute_dtype, beta=0.04,
                   gradient_checkpointing=checkpointing)
    with tempfile.TemporaryDirectory() as tmp:
        rows = [g.row for g in groups]  # a rank with no group runs the placeholder made from the first readable one
        trainer = RLTrainer(model, ref, processor, None, rows, RULES, cfg, tmp, log=lambda _: None, world=world)
        result = trainer.update([groups[i] for i in mine], [advantages[i] for i in mine])
    # FSDP2 leaves a root unit gathered after a forward (its backward reshards it): the trainer reshards the
    # reference, which has none
    gathered = {name: sum(not isinstance(p, DTensor) for p in m.parameters()) for name, m in (("policy", model), ("reference", ref))}
    weights = {k: v.detach().float().cpu().clone() for k, v in full_state_dict(model, world).items()}
    return {**result, "weights": weights, "groups": len(mine), "gathered_after_update": gathered}


def positions_of_a_long_clip(model_dir: str, clip: str, world) -> dict:
    """The positions a sharded bf16 forward runs with, against those of the clip's fp32 seconds."""
    processor = load_processor(model_dir)
    [model] = load_sharded_models(model_dir, world, (torch.float32,), "bfloat16")
    row = {"problem": "Which way does it move?", "problem_type": "multiple choice", "options": ["A. left", "B. right"],
           "data_type": "video"}
    prompt = prompt_inputs(processor, row, load_medium(clip, "video", LONG_CLIP_RULES))
    expected = prompt_positions(model, prompt)
    seen = []
    rope_index = model.model.get_rope_index

    def recording(*args, **kwargs):
        out = rope_index(*args, **kwargs)
        seen.append(out[0].clone())
        return out

    model.model.get_rope_index = recording
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        model(**prompt)
    video = expected[0, 0][prompt["mm_token_type_ids"][0] == 2]  # temporal ids of the video's tokens
    return {"seconds": prompt["second_per_grid_ts"].tolist(), "expected": expected, "sharded_bf16": seen[0],
            "video_temporal": (video - video.min()).unique().tolist()}


def main(model_dir: str, synth: str, clip: str, out: str) -> None:
    torch.set_num_threads(1)
    world = init_world()
    results = {f"{dtype}/{split}": update(model_dir, synth, world, dtype, split)
               for dtype in ("float32", "bfloat16") for split in ("even", "uneven", "one_rank")
               if world.distributed or split == "even"}
    # gradient checkpointing: G whole sequences, the vision tower once per group, inside FSDP2's root forward
    results["float32/checkpointed"] = update(model_dir, synth, world, "float32", "uneven" if world.distributed else "even",
                                             checkpointing=True)
    results["positions"] = positions_of_a_long_clip(model_dir, clip, world)
    if world.is_main:
        torch.save({**results, "world": world.size}, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
