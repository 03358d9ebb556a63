"""Everything about running on N processes, in one place: the process group, FSDP2 sharding, full weights.

Launch with ``torchrun --nproc_per_node=N``; a single process needs no launcher and gets a world of one,
where every function here is a no-op or its plain equivalent. The backend is NCCL on GPUs and gloo on
CPUs (how the tests run two processes on this machine).

Checkpoints are torch.distributed.checkpoint directories (each rank writes its shards), renamed into place
atomically once complete, so a run killed at any moment resumes from the newest complete one.

Sharding is PyTorch FSDP2: ``fully_shard`` on every language-model decoder layer and every vision block,
then on the root. Parameters, gradients and the optimizer state stay fp32 and sharded (the master copy);
with ``compute_dtype: bfloat16`` FSDP gathers bf16 copies for compute and reduces gradients in fp32.

A node is asymmetric, and every function here is written for it:
- each rank owns ``cuda:LOCAL_RANK`` (set before the process group; ``check_device`` asserts it stays so);
- models are sharded as they load (``load_sharded_models``): no full copy on any GPU, one in rank 0's RAM;
- full weights leave the shards a bucket at a time (``full_tensors``), never all at once;
- collectives are called the same number of times on every rank, whatever each rank's share of the work:
  never inside a loop condition or a branch that depends on local data.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import random
import shutil
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def device(self) -> torch.device:
        return torch.device("cuda", self.local_rank) if torch.cuda.is_available() else torch.device("cpu")


def init_world() -> World:
    """The process group of a ``torchrun`` launch (initialised once), or a world of one."""
    size = int(os.environ.get("WORLD_SIZE", "1"))
    world = World(rank=int(os.environ.get("RANK", "0")), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))
    if world.distributed and not dist.is_initialized():
        if torch.cuda.is_available():
            torch.cuda.set_device(world.local_rank)
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return world


def check_device(world: World) -> None:
    """Each rank computes on its own GPU. Raise if something (an engine's worker, a library) moved this process's
    current device elsewhere: every later allocation and NCCL call would land on another rank's GPU."""
    if torch.cuda.is_available() and torch.cuda.current_device() != world.local_rank:
        raise RuntimeError(
            f"rank {world.rank}: the current CUDA device is {torch.cuda.current_device()}, not its local "
            f"rank {world.local_rank}"
        )


def barrier(world: World) -> None:
    if world.distributed:
        dist.barrier()


def all_sum(world: World, value: float) -> float:
    """The sum of a number over all ranks (fp64 on the wire)."""
    if not world.distributed:
        return value
    t = torch.tensor([value], dtype=torch.float64, device=world.device if world.device.type == "cuda" else "cpu")
    dist.all_reduce(t)
    return float(t.item())


def all_max(world: World, value: int) -> int:
    if not world.distributed:
        return value
    t = torch.tensor([value], dtype=torch.int64, device=world.device if world.device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return int(t.item())


def gather_objects(world: World, obj) -> list:
    """Every rank's ``obj`` (small, picklable), in rank order, on every rank."""
    if not world.distributed:
        return [obj]
    out = [None] * world.size
    dist.all_gather_object(out, obj)
    return out


def shard_model(model, world: World, compute_dtype: str = "float32"):
    """FSDP2 over the world: each decoder layer and vision block its own unit, then the root. No-op alone."""
    if not world.distributed:
        return model
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

    mesh = init_device_mesh(world.device.type, (world.size,))  # CPU needs the mesh named explicitly (gloo)
    mp = MixedPrecisionPolicy(param_dtype=getattr(torch, compute_dtype), reduce_dtype=torch.float32)
    inner = model.model
    for block in list(inner.language_model.layers) + list(inner.visual.blocks):
        fully_shard(block, mesh=mesh, mp_policy=mp)
    # The model's own inputs are not cast: FSDP would turn second_per_grid_ts into bf16 with the pixels (4.575 ->
    # 4.5625) and move temporal positions; the vision tower casts its pixels to its weights' dtype itself.
    fully_shard(model, mesh=mesh, mp_policy=dataclasses.replace(mp, cast_forward_inputs=False))
    return model


def load_sharded_models(
    path: str | Path,
    world: World,
    dtypes: Sequence[torch.dtype],
    compute_dtype: str = "float32",
    attn_implementation: str = "sdpa",
) -> list:
    """A model directory's model once per dtype (the fp32 policy, the compute-dtype reference), each sharded as it
    loads: every rank builds it on the meta device and shards it, rank 0 reads the checkpoint once (in its own
    dtype), and each tensor is broadcast in turn, every rank keeping its shard in the model's dtype. No rank
    ever holds a full copy on its device, and only rank 0 one in host memory. Alone: plain loads."""
    from .models import empty_model, load_model

    if not world.distributed:
        return [
            load_model(path, dtype=dtype, device=str(world.device), attn_implementation=attn_implementation)
            for dtype in dtypes
        ]
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_model_state_dict

    full = load_model(path, dtype="auto").state_dict() if world.is_main else {}
    models = []
    for dtype in dtypes:
        model = empty_model(path, dtype=dtype, attn_implementation=attn_implementation)
        buffers = {name: b.clone() for name, b in model.named_buffers()}  # computed, not in the checkpoint
        shard_model(model, world, compute_dtype)
        model.to_empty(device=world.device)
        with torch.no_grad():
            for name, b in model.named_buffers():
                b.copy_(buffers[name])
        # a copy of the dict: set_model_state_dict puts the local shards into the one it is given
        set_model_state_dict(
            model, dict(full), options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=True)
        )
        models.append(model)
    return models


@contextlib.contextmanager
def gathered(model, world: World):
    """Every FSDP unit's full parameters for the block (generation: each rank decodes its own lengths, so its
    forwards cannot wait on the other ranks' all-gathers)."""
    if not world.distributed:
        yield model
        return
    from torch.distributed.fsdp import FSDPModule

    units = [m for m in model.modules() if isinstance(m, FSDPModule)]
    for unit in units:
        unit.unshard()
    try:
        yield model
    finally:
        for unit in units:
            unit.reshard()


def reshard(model) -> None:
    """Free an FSDP2 model's gathered weights now. After a forward FSDP keeps the root unit's (embeddings, LM head)
    for the backward; a frozen model (the reference) has no backward, so they would stay gathered. No-op alone."""
    from torch.distributed.fsdp import FSDPModule

    if isinstance(model, FSDPModule):
        model.reshard()


def full_tensors(
    model, world: World, *, dtype: torch.dtype | None = None, bucket_bytes: int = 0
) -> Iterator[tuple[str, torch.Tensor]]:
    """Every full (unsharded) tensor of the model by transformers name, streamed: up to ``bucket_bytes`` of them
    are gathered (sharded ones cast to ``dtype`` before the gather), handed on, and dropped before the next bucket,
    so the peak is one bucket (at least one tensor), never the whole model. Alone: the model's own tensors.
    Collective when sharded: every rank must consume the whole iterator, in the same order."""
    from torch.distributed.tensor import DTensor

    bucket, size = [], 0
    for name, value in model.state_dict().items():
        if isinstance(value, DTensor):
            value = (value.to(dtype) if dtype is not None else value).full_tensor()
        bucket.append((name, value.detach()))
        size += value.nbytes
        if size >= bucket_bytes:
            yield from bucket
            bucket, size = [], 0
    yield from bucket


def full_state_dict(model, world: World) -> dict[str, torch.Tensor]:
    """Every full tensor at once, on every rank: small models and tests only (``full_tensors`` streams)."""
    return dict(full_tensors(model, world))


def copy_full_weights(model, world: World, target) -> None:
    """Copy the (sharded) model's full weights into ``target``, an unsharded model on the main rank (None on the
    others), a tensor at a time: every rank takes part in each gather; only the main rank keeps the result."""
    if target is model:  # alone: the model already is its full weights
        return
    own = target.state_dict() if target is not None else {}
    with torch.no_grad():
        for name, tensor in full_tensors(model, world):
            if target is not None:
                own[name].copy_(tensor)


def save_sharded(model, optimizer, world: World, path: Path, extra: dict) -> None:
    """Model and optimizer state, each rank writing its own shards (torch.distributed.checkpoint), plus ``extra``
    (scheduler, step, RNG: rank 0's file, and each rank's RNG beside it), as one atomic directory rename."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict

    tmp = path.with_name(f".{path.name}.tmp")
    if world.is_main:
        shutil.rmtree(tmp, ignore_errors=True)
    barrier(world)
    model_state, optim_state = get_state_dict(model, optimizer)
    dcp.save({"model": model_state, "optimizer": optim_state}, checkpoint_id=str(tmp))
    torch.save(
        {"torch": torch.get_rng_state(), "python": random.getstate(), "numpy": np.random.get_state()},
        tmp / f"rng-{world.rank}.pt",
    )
    barrier(world)
    if world.is_main:
        torch.save(extra, tmp / "trainer.pt")
        os.replace(tmp, path)  # a checkpoint directory exists only once every shard of it is written
    barrier(world)


def load_sharded(model, optimizer, world: World, path: Path) -> dict:
    """Restore what ``save_sharded`` wrote into the (identically sharded) model and optimizer; returns ``extra``."""
    import torch.distributed.checkpoint as dcp
    from torch.distributed.checkpoint.state_dict import get_state_dict, set_state_dict

    model_state, optim_state = get_state_dict(model, optimizer)
    state = {"model": model_state, "optimizer": optim_state}
    dcp.load(state, checkpoint_id=str(path))
    set_state_dict(model, optimizer, model_state_dict=state["model"], optim_state_dict=state["optimizer"])
    rng = torch.load(path / f"rng-{world.rank}.pt", weights_only=False)
    torch.set_rng_state(rng["torch"])
    random.setstate(rng["python"])
    np.random.set_state(rng["numpy"])
    return torch.load(path / "trainer.pt", weights_only=False)


def relaunch(nproc: int, module: str) -> None:
    """Re-run ``python -m module`` under torchrun with ``nproc`` processes on this node (no-op when already
    launched, or for one process). For several nodes, start torchrun yourself with --nnodes/--node_rank/
    --rdzv_endpoint on each (README, 'Several processes')."""
    if nproc > 1 and "LOCAL_RANK" not in os.environ:
        import sys

        os.execvp(
            sys.executable,
            [
                sys.executable,
                "-m",
                "torch.distributed.run",
                "--standalone",
                f"--nproc_per_node={nproc}",
                "-m",
                module,
                "--",  # the stage's own arguments: torchrun would read --run as an abbreviation of its --run-path
                *sys.argv[1:],
            ],
        )


def gpu_groups(nproc: int, per_process: int = 1) -> list[str]:
    """``CUDA_VISIBLE_DEVICES`` for each of ``nproc`` independent processes (no process group) that take
    ``per_process`` GPUs each, in order, from this node's visible ones (``CUDA_VISIBLE_DEVICES`` if set, ids or
    UUIDs, else every GPU): process k gets the k-th group, and sees it as cuda:0..per_process-1. ValueError when
    there are too few."""
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    ids = (
        [d.strip() for d in visible.split(",") if d.strip()]
        if visible is not None
        else [str(i) for i in range(torch.cuda.device_count())]
    )
    if nproc * per_process > len(ids):
        raise ValueError(
            f"{nproc} processes × {per_process} GPU(s) each need {nproc * per_process} GPUs; "
            f"{len(ids)} visible ({visible if visible is not None else 'all of this node'})"
        )
    return [",".join(ids[k * per_process : (k + 1) * per_process]) for k in range(nproc)]


def die_with_parent(parent_pid: int | None = None) -> None:
    """Make this process die (SIGKILL) when its parent does (Linux ``PR_SET_PDEATHSIG``; elsewhere a no-op), so a
    killed launcher leaves no worker behind; exits at once if the parent ``parent_pid`` is already gone."""
    import signal
    import sys

    if sys.platform.startswith("linux"):
        import ctypes

        try:
            ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL, 0, 0, 0)  # 1: PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass
    if parent_pid is not None and os.getppid() != parent_pid:
        os._exit(1)
