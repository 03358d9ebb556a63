"""DVC stage `rl`: T-GRPO (or plain GRPO with `temporal: false`) from models/sft -> models/rl.

    python -m tasks.rl                                   # the pipeline's run
    python -m tasks.rl --run grpo-1 --set train.temporal=false --set train.seed=1   # one run of an experiment

Rows: data/collected.parquet. The reference model is a frozen copy of the SFT model.
Curves: plots/rl.csv (DVC plots) and TensorBoard under logs/rl; checkpoints under
models/rl-checkpoints every `save_steps`; a killed run resumes from the newest. With ``--run NAME``
everything goes under runs/NAME/ instead (model, checkpoints, rl.csv, rl.json, logs), and ``--set``
changes single knobs of the rl section for that run (checked as the file's own values are).
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from videor1.data.schema import COLLECTED_TABLE_SCHEMA
from videor1.distributed import World, barrier, copy_full_weights, init_world, load_sharded_models, relaunch
from videor1.generation import GenerationBackend, TransformersBackend, make_backend
from videor1.io import atomic_path, write_json, write_run_record
from videor1.models import load_model, load_processor, model_signature
from videor1.params import RLParams, result_params
from videor1.rl import RLTrainer
from videor1.store import fingerprint

from .params import config, set_threads
from .tables import read_stage_table
from .training import prepare_checkpoints, window_mean, write_curve

IN_TABLE = Path("data/collected.parquet")


@dataclass(frozen=True)
class Outputs:
    model: Path = Path("models/rl")
    checkpoints: Path = Path("models/rl-checkpoints")  # working state (and tensorboard's): kept, ignored by git
    plot: Path = Path("plots/rl.csv")
    metrics: Path = Path("metrics/rl.json")
    tensorboard: Path = Path("logs/rl")
    record: str = "rl"  # the run record: metrics/run/<record>.json

    @classmethod
    def of_run(cls, name: str) -> Outputs:
        root = Path("runs") / name
        return cls(root / "model", root / "checkpoints", root / "rl.csv", root / "rl.json", root / "logs", f"rl@{name}")


# what a step computes; its timings (time_rollout_s, ...) go to TensorBoard and the run record, never to the curve
CURVE_FIELDS = [
    "step",
    "reward",
    "accuracy",
    "format",
    "temporal_fired",
    "shuffled_accuracy",
    "completion_length",
    "distinct_completions",
    "kl",
    "loss",
    "all_correct",
    "all_wrong",
    "grad_norm",
    "learning_rate",
]
TIMES = ["time_rollout_s", "time_scoring_s", "time_update_s"]


def step_line(record: dict, steps: int) -> str:
    head = f"rl step {record['step']}/{steps}: "
    if not record["groups"]:  # every rank skipped every row of the step (logged in skipped.jsonl): no update
        return head + "no group (every row of the step was skipped)"
    return (
        head + f"reward {record['reward']:.3f} accuracy {record['accuracy']:.3f} format {record['format']:.3f} "
        f"length {record['completion_length']:.1f} kl {record['kl']:.4f} "
        f"({record['time_rollout_s']:.2f}+{record['time_scoring_s']:.2f}+{record['time_update_s']:.2f} s)"
    )


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


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tasks.rl", description="T-GRPO from the SFT model")
    ap.add_argument("--run", help="write everything under runs/RUN/ (one run of an experiment)")
    ap.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="change one knob of the rl section, e.g. train.seed=1 (repeatable)",
    )
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(sys.argv[1:] if argv is None else argv)
    cfg = config("rl", overrides=args.set)
    out = Outputs.of_run(args.run) if args.run else Outputs()
    relaunch(cfg.nproc, "tasks.rl")
    world = init_world()
    set_threads(cfg.threads)
    rows = read_stage_table("rl", IN_TABLE, COLLECTED_TABLE_SCHEMA, made_by="collect").to_dicts()
    train = cfg.train
    try:
        processor = load_processor(cfg.policy)
        # sharded as they load (no full copy on any GPU): the fp32 master weights, and the frozen reference in the
        # compute dtype (it only ever runs forwards)
        dtypes = (torch.float32, getattr(torch, train.compute_dtype))
        model, ref_model = load_sharded_models(cfg.policy, world, dtypes, train.compute_dtype, cfg.attn_implementation)
    except FileNotFoundError as err:
        sys.exit(f"rl: {err}")
    ref_model.requires_grad_(False)
    if world.is_main:
        run = {"params": result_params(cfg), "rows": [(r["problem_id"], r["path"]) for r in rows]}
        run_id = fingerprint({**run, "policy": model_signature(cfg.policy)})
        prepare_checkpoints(out.checkpoints, run_id, "rl", also=[out.tensorboard])
    barrier(world)
    try:
        backend = rollout_backend(cfg, world, model, processor)
    except ValueError as err:
        sys.exit(f"rl: {err}")
    log = print if world.is_main else (lambda _: None)
    trainer = RLTrainer(model, ref_model, processor, backend, rows, cfg.media, train, out.checkpoints, log, world)
    ran = []  # this run's steps (the records also hold those of the runs it resumed)
    if world.is_main:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(str(out.tensorboard))

    def on_step(record: dict) -> None:  # the main rank's: TensorBoard and a line now and then
        ran.append(record)
        for key in CURVE_FIELDS[1:] + TIMES:
            if record.get(key) is not None:
                writer.add_scalar(f"rl/{key}", record[key], record["step"])
        if record["step"] % max(1, train.steps // 20) == 0 or record["step"] == train.steps:
            print(step_line(record, train.steps), flush=True)

    records = trainer.train(on_step=on_step if world.is_main else None)
    # unsharded, in host memory on the main rank, to carry the weights; every rank takes part in each gather
    target = (load_model(cfg.policy) if world.distributed else model) if world.is_main else None
    copy_full_weights(model, world, target)
    if not world.is_main:
        return
    writer.close()
    with atomic_path(out.model) as tmp:
        target.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    write_curve(out.plot, records, CURVE_FIELDS)
    window = max(1, len(records) // 5)

    def mean(key: str, n: int, last: bool) -> float | None:
        return window_mean([r.get(key) for r in records], n, last, digits=4)

    first = {f"{k}_first_window": mean(k, window, False) for k in ("reward", "accuracy", "completion_length")}
    last = {f"{k}_last_window": mean(k, window, True) for k in ("reward", "accuracy", "completion_length", "kl")}
    write_json(
        out.metrics,
        {
            "steps": trainer.step,
            "temporal": train.temporal,
            "window_steps": window,
            **first,
            **last,
            "temporal_fired_share": mean("temporal_fired", len(records), True),
            "skipped_rows": trainer.skip_log.read_text().count("\n") if trainer.skip_log.exists() else 0,
        },
    )

    def per_step(values: list[float]) -> float | None:
        return round(sum(values) / len(values), 4) if values else None

    write_run_record(
        out.record,
        {
            "steps_this_run": len(ran),
            "seconds_per_step": per_step([sum(r[t] for t in TIMES) for r in ran]),
            **{f"{t.removesuffix('_s')}_per_step_s": per_step([r[t] for r in ran]) for t in TIMES},
        },
    )
    print(f"rl: {trainer.step} steps -> {out.model}")


if __name__ == "__main__":
    main()
