"""A short T-GRPO run of the tiny model on however many processes torchrun starts, resumable.

    torchrun --nproc_per_node=N tests/dist/rl_train.py MODEL_DIR SYNTH_DIR CHECKPOINT_DIR OUT.pt [transformers|vllm]

Rollouts from transformers (with N > 1 a full copy on each rank) or from a vLLM engine per rank, synced after
every update with the full weights gathered from the FSDP2-sharded policy; FSDP2-sharded
policy and reference, a sharded checkpoint after every step. Rank 0 saves the final full weights and the
step records for tests/test_distributed.py.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

import videor1  # noqa: F401
from videor1.distributed import full_state_dict, init_world, load_sharded_models
from videor1.generation import TransformersBackend
from videor1.media import MediaRules
from videor1.models import load_model, load_processor
from videor1.rl import RLConfig, RLTrainer

RULES = MediaRules(max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056)


def main(model_dir: str, synth: str, checkpoints: str, out: str, backend: str = "transformers") -> None:
    torch.set_num_threads(1)
    world = init_world()
    processor = load_processor(model_dir)
    model, ref = load_sharded_models(model_dir, world, (torch.float32, torch.float32))  # as tasks.rl loads them
    ref.requires_grad_(False)
    rows = [{**r, "media_root": synth} for r in json.loads((Path(synth) / "train.json").read_text())]
    cfg = RLConfig(steps=4, prompts_per_step=2, num_generations=4, max_completion_length=12, len_min=4, len_max=12,
                   learning_rate=1e-3, save_steps=1, seed=0)
    if backend == "vllm":
        from videor1.generation.vllm_engine import VLLMBackend

        engine = VLLMBackend(model_dir, max_model_len=2048, dtype="float32", max_num_seqs=16, colocated=True)
    else:  # alone the policy samples; sharded, a full copy per rank
        sampler = model if not world.distributed else load_model(model_dir).requires_grad_(False)
        engine = TransformersBackend(sampler, processor, batch_size=12)
    trainer = RLTrainer(model, ref, processor, engine, rows, RULES, cfg, checkpoints, log=lambda _: None, world=world)
    records = trainer.train()
    weights = {k: v.detach().float().cpu().clone() for k, v in full_state_dict(model, world).items()}
    if world.is_main:
        torch.save({"weights": weights, "records": records, "world": world.size}, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
