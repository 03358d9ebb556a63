"""Each rank's resident memory while the RL stage's policy (fp32) and reference (bf16) load, sharded as they load.

    torchrun --nproc_per_node=N tests/dist/startup_memory.py MODEL_DIR OUT.json [sharded|replicated]

sharded: ``videor1.distributed.load_sharded_models`` (what ``tasks.rl`` runs). replicated: what it ran before
(every rank loads the full fp32 policy, deep-copies it for the reference, then shards both), for comparison.
Peak resident memory (VmHWM, reset just before loading) less the resident memory before loading, per rank,
with the model's full fp32 bytes beside it.
"""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

import torch

import videor1  # noqa: F401
from videor1.distributed import gather_objects, init_world, load_sharded_models, shard_model
from videor1.models import empty_model, load_model


def status_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise KeyError(field)


def replicated(path: str, world):
    model = load_model(path)
    ref = copy.deepcopy(model).to(torch.bfloat16)
    return shard_model(model, world, "bfloat16"), shard_model(ref, world, "bfloat16")


def main(model_dir: str, out: str, how: str = "sharded") -> None:
    torch.set_num_threads(1)
    world = init_world()
    full_fp32 = sum(p.numel() for p in empty_model(model_dir).parameters()) * 4
    Path("/proc/self/clear_refs").write_text("5")  # peak resident memory := resident memory now
    before = status_kib("VmRSS")
    if how == "sharded":
        models = load_sharded_models(model_dir, world, (torch.float32, torch.bfloat16), "bfloat16")
    else:
        models = replicated(model_dir, world)
    peak = status_kib("VmHWM")
    shard = sum(p.to_local().numel() if hasattr(p, "to_local") else p.numel() for p in models[0].parameters()) * 4
    ranks = gather_objects(world, {"rank": world.rank, "extra_peak_bytes": (peak - before) * 1024, "shard_fp32_bytes": shard})
    if world.is_main:
        Path(out).write_text(json.dumps({"how": how, "world": world.size, "full_fp32_bytes": full_fp32, "ranks": ranks}))


if __name__ == "__main__":
    main(*sys.argv[1:])
