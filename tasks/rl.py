"""DVC stage `rl`: T-GRPO (or plain GRPO with `temporal: false`) from models/sft -> models/rl.

    python -m tasks.rl                                   # the pipeline's run
    python -m tasks.rl --run grpo-1 --set train.temporal=false --set train.seed=1   # one run of an experiment

Rows: data/collected.parquet. The reference model is a frozen copy of the SFT model.
Curves: plots/rl.csv (DVC plots) and TensorBoard under logs/rl; checkpoints under
models/rl-checkpoints every `save_steps`; a killed run resumes from the newest. With ``--run NAME``
everything goes under runs/NAME/ instead (model, checkpoints, rl.csv, rl.json, logs), and ``--set``
changes single knobs of the rl section for that run.
"""

from __future__ import annotations

import argparse
import csv
import io
import shutil
import sys
from dataclasses import dataclass
from pathlib import Path

import torch

from videor1.data.schema import COLLECTED_TABLE_SCHEMA
from videor1.distributed import barrier, copy_full_weights, init_world, load_sharded_models, relaunch
from videor1.generation import TransformersBackend, make_backend
from videor1.io import atomic_path, write_json, write_text
from videor1.media import MediaRules
from videor1.models import check_attention, load_model, load_processor, model_signature
from videor1.rl import RLConfig, RLTrainer
from videor1.store import fingerprint

from .params import result_params, set_threads, stage_params, with_overrides
from .tables import read_stage_table

IN_TABLE = Path("data/collected.parquet")


@dataclass(frozen=True)
class Outputs:
    model: Path = Path("models/rl")
    checkpoints: Path = Path("models/rl-checkpoints")
    plot: Path = Path("plots/rl.csv")
    metrics: Path = Path("metrics/rl.json")
    tensorboard: Path = Path("logs/rl")

    @classmethod
    def of_run(cls, name: str) -> Outputs:
        root = Path("runs") / name
        return cls(root / "model", root / "checkpoints", root / "rl.csv", root / "rl.json", root / "logs")


PIPELINE = Outputs()
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
    "time_rollout_s",
    "time_scoring_s",
    "time_update_s",
]


def prepare_checkpoints(run_id: str, out: Outputs = PIPELINE) -> None:
    marker = out.checkpoints / "run.json"
    if out.checkpoints.exists() and (not marker.exists() or marker.read_text().strip() != run_id):
        print(f"rl: {out.checkpoints} holds another configuration's checkpoints; starting over")
        shutil.rmtree(out.checkpoints)
        shutil.rmtree(out.tensorboard, ignore_errors=True)
    out.checkpoints.mkdir(parents=True, exist_ok=True)
    write_text(marker, run_id + "\n")


def window_mean(records: list[dict], key: str, n: int, last: bool) -> float | None:
    values = [r[key] for r in (records[-n:] if last else records[:n]) if r.get(key) is not None]
    return round(sum(values) / len(values), 4) if values else None


def step_line(record: dict, steps: int) -> str:
    head = f"rl step {record['step']}/{steps}: "
    if not record["groups"]:  # every rank skipped every row of the step (logged in skipped.jsonl): no update
        return head + "no group (every row of the step was skipped)"
    return (
        head + f"reward {record['reward']:.3f} accuracy {record['accuracy']:.3f} format {record['format']:.3f} "
        f"length {record['completion_length']:.1f} kl {record['kl']:.4f} "
        f"({record['time_rollout_s']:.2f}+{record['time_scoring_s']:.2f}+{record['time_update_s']:.2f} s)"
    )


def node_knob_error(p: dict) -> str | None:
    """What is wrong with the rollout engine's node knobs, before any process starts or any weight loads."""
    sleep, length, bucket = p.get("vllm_sleep", False), p.get("max_model_len"), p["train"].get("sync_bucket_mb", 1024)
    if not isinstance(sleep, bool):
        return f"vllm_sleep must be true or false, got {sleep!r}"
    if length is not None and (not isinstance(length, int) or isinstance(length, bool) or length < 1):
        return f"max_model_len must be a positive number of tokens or null, got {length!r}"
    if not isinstance(bucket, int) or isinstance(bucket, bool) or bucket < 0:
        return f"train.sync_bucket_mb must be a whole number of MiB >= 0, got {bucket!r}"
    if sleep and p.get("rollout_backend", "transformers") != "vllm":
        return "vllm_sleep: true needs rollout_backend: vllm"
    if sleep and not torch.cuda.is_available():
        return "vllm_sleep: true needs vLLM's CUDA build on a GPU (the CPU build has no sleep mode)"
    try:
        check_attention(p.get("attn_implementation", "sdpa"))
    except ValueError as err:
        return str(err)
    return None


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
    try:
        p = with_overrides(stage_params("rl"), args.set)
    except (KeyError, ValueError) as err:
        sys.exit(f"rl: {err}")
    if error := node_knob_error(p):
        sys.exit(f"rl: {error}")
    out = Outputs.of_run(args.run) if args.run else PIPELINE
    nproc = int(p.get("nproc", 1))
    relaunch(nproc, "tasks.rl")
    world = init_world()
    set_threads(p.get("threads", 1))
    rows = read_stage_table("rl", IN_TABLE, COLLECTED_TABLE_SCHEMA, made_by="collect").to_dicts()
    policy_dir = Path(p["policy"])
    cfg = RLConfig(**p["train"])
    if cfg.compute_dtype not in ("float32", "bfloat16"):
        sys.exit(f"rl: train.compute_dtype must be float32 or bfloat16, got {cfg.compute_dtype!r}")
    if cfg.prompts_per_step % world.size:
        sys.exit(f"rl: train.prompts_per_step ({cfg.prompts_per_step}) must be a multiple of nproc ({world.size})")
    backend_kind = p.get("rollout_backend", "transformers")
    if backend_kind not in ("transformers", "vllm"):
        sys.exit(f"rl: rollout_backend must be transformers or vllm, got {backend_kind!r}")
    compute = getattr(torch, cfg.compute_dtype)
    attention = p.get("attn_implementation", "sdpa")
    try:
        processor = load_processor(policy_dir)
        # sharded as they load (no full copy on any GPU): the fp32 master weights, and the frozen reference in the
        # compute dtype (it only ever runs forwards)
        model, ref_model = load_sharded_models(
            policy_dir, world, (torch.float32, compute), cfg.compute_dtype, attention
        )
    except FileNotFoundError as err:
        sys.exit(f"rl: {err}")
    ref_model.requires_grad_(False)
    if world.is_main:
        prepare_checkpoints(
            fingerprint(
                {
                    "params": result_params(p),
                    "rows": [(r["problem_id"], r["path"]) for r in rows],
                    "policy": model_signature(policy_dir),
                }
            ),
            out,
        )
    barrier(world)
    per_rank_sequences = cfg.prompts_per_step // world.size * (cfg.num_generations + cfg.num_generations // 2)
    if backend_kind == "vllm":  # colocated, built after sharding: each rank its own engine on its own GPU
        try:
            backend = make_backend(
                "vllm",
                str(policy_dir),
                max_model_len=p.get("max_model_len") or cfg.max_prompt_length + cfg.max_completion_length,
                dtype=cfg.compute_dtype,
                gpu_memory_utilization=p.get("gpu_memory_utilization", 0.3),
                seed=cfg.seed,
                colocated=True,
                sleep_mode=p.get("vllm_sleep", False),
            )
        except ValueError as err:
            sys.exit(f"rl: {err}")
    elif world.distributed:  # each rank samples from a full copy in the compute dtype, synced after every update
        sampler = load_model(policy_dir, dtype=compute, device=str(world.device), attn_implementation=attention)
        sampler.requires_grad_(False)
        backend = TransformersBackend(sampler, processor, batch_size=per_rank_sequences)
    else:  # alone, the policy itself samples
        backend = TransformersBackend(model, processor, batch_size=per_rank_sequences)  # one generate call per step
    trainer = RLTrainer(
        model,
        ref_model,
        processor,
        backend,
        rows,
        MediaRules(**p["media"]),
        cfg,
        out.checkpoints,
        log=print if world.is_main else (lambda _: None),
        world=world,
    )
    if not world.is_main:  # rank 0 writes the curves, the model and the metrics
        trainer.train()
        copy_full_weights(model, world, None)  # its part of the gathers
        return

    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out.tensorboard))

    def on_step(record: dict) -> None:
        for key in CURVE_FIELDS[1:]:
            if record.get(key) is not None:
                writer.add_scalar(f"rl/{key}", record[key], record["step"])
        if record["step"] % max(1, cfg.steps // 20) == 0 or record["step"] == cfg.steps:
            print(step_line(record, cfg.steps), flush=True)

    records = trainer.train(on_step=on_step)
    writer.close()
    saved = load_model(policy_dir) if world.distributed else model  # unsharded, in host memory, to carry the weights
    copy_full_weights(model, world, saved)  # a tensor at a time: no GPU holds the whole model
    with atomic_path(out.model) as tmp:
        saved.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    buf = io.StringIO()
    table = csv.DictWriter(buf, fieldnames=CURVE_FIELDS, extrasaction="ignore")
    table.writeheader()
    table.writerows(records)
    write_text(out.plot, buf.getvalue())
    window = max(1, len(records) // 5)
    write_json(
        out.metrics,
        {
            "steps": trainer.step,
            "temporal": cfg.temporal,
            "window_steps": window,
            **{
                f"{key}_first_window": window_mean(records, key, window, last=False)
                for key in ("reward", "accuracy", "completion_length")
            },
            **{
                f"{key}_last_window": window_mean(records, key, window, last=True)
                for key in ("reward", "accuracy", "completion_length", "kl")
            },
            "temporal_fired_share": window_mean(records, "temporal_fired", len(records), last=True),
            "skipped_rows": trainer.skip_log.read_text().count("\n") if trainer.skip_log.exists() else 0,
            "seconds_per_step": window_mean(
                [{"t": r["time_rollout_s"] + r["time_scoring_s"] + r["time_update_s"]} for r in records],
                "t",
                len(records),
                last=True,
            ),
        },
    )
    print(f"rl: {trainer.step} steps -> {out.model}")


if __name__ == "__main__":
    main()
