"""The models a T-GRPO run holds: the policy (fp32 master weights), its frozen reference, and the rollout sampler
(``rl.rollout_backend``) that generates a step's completions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..distributed import World, load_sharded_models
from ..generation import GenerationBackend, TransformersBackend, make_backend
from ..models import load_model, load_processor

if TYPE_CHECKING:
    from ..params import RLParams


def load_policy_and_reference(cfg: RLParams, world: World) -> tuple:
    """The processor, the policy and the frozen reference, both from ``cfg.policy`` (the SFT model), sharded as they
    load (no full copy on any GPU): the fp32 master weights, and the reference in the compute dtype (it only ever
    runs forwards). FileNotFoundError when the model directory is incomplete."""
    processor = load_processor(cfg.policy)
    train = cfg.train
    dtypes = (torch.float32, getattr(torch, train.compute_dtype))
    model, ref_model = load_sharded_models(cfg.policy, world, dtypes, train.compute_dtype, cfg.attn_implementation)
    ref_model.requires_grad_(False)
    return processor, model, ref_model


def rollout_backend(cfg: RLParams, world: World, model, processor) -> GenerationBackend:
    """The sampler: a colocated vLLM engine per rank (built after sharding, on the rank's GPU), a full copy in the
    compute dtype per rank (synced after every update), or, alone, the policy itself."""
    train = cfg.train
    if cfg.rollout_backend == "vllm":
        return make_backend(
            "vllm",
            cfg.policy,
            tensor_parallel_size=cfg.tensor_parallel_size,
            max_model_len=cfg.engine_len(),
            dtype=train.compute_dtype,
            gpu_memory_utilization=cfg.gpu_memory_utilization,
            seed=train.seed,
            colocated=True,
            sleep_mode=cfg.vllm_sleep,
        )
    per_rank = train.prompts_per_step // world.size * (train.num_generations + train.num_generations // 2)
    sampler = model
    if world.distributed:
        dtype = getattr(torch, train.compute_dtype)
        sampler = load_model(
            cfg.policy, dtype=dtype, device=str(world.device), attn_implementation=cfg.attn_implementation
        )
        sampler.requires_grad_(False)
    return TransformersBackend(sampler, processor, batch_size=per_rank)  # one generate call per step
