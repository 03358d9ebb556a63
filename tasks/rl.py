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
from pathlib import Path

from videor1.curves import write_curve
from videor1.data.schema import COLLECTED_TABLE_SCHEMA
from videor1.distributed import barrier, copy_full_weights, init_world, relaunch
from videor1.io import atomic_path, write_json, write_run_record
from videor1.models import load_model, model_signature
from videor1.params import result_params
from videor1.rl import RLTrainer
from videor1.rl.models import load_policy_and_reference, rollout_backend
from videor1.rl.outputs import RLOutputs
from videor1.rl.records import CURVE_FIELDS, StepLog, final_metrics
from videor1.store import fingerprint

from .params import config, set_threads
from .tables import read_stage_table
from .training import prepare_checkpoints

IN_TABLE = Path("data/collected.parquet")


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
    out = RLOutputs.of_run(args.run) if args.run else RLOutputs()
    relaunch(cfg.nproc, "tasks.rl")
    world = init_world()
    set_threads(cfg.threads)
    rows = read_stage_table("rl", IN_TABLE, COLLECTED_TABLE_SCHEMA, made_by="collect").to_dicts()
    train = cfg.train
    try:
        processor, model, ref_model = load_policy_and_reference(cfg, world)
    except FileNotFoundError as err:
        sys.exit(f"rl: {err}")
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
    step_log = StepLog(out.tensorboard, train.steps) if world.is_main else None  # TensorBoard: the main rank's
    records = trainer.train(on_step=step_log)
    # unsharded, in host memory on the main rank, to carry the weights; every rank takes part in each gather
    target = (load_model(cfg.policy) if world.distributed else model) if world.is_main else None
    copy_full_weights(model, world, target)
    if not world.is_main:
        return
    step_log.close()
    with atomic_path(out.model) as tmp:
        target.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)
    write_curve(out.plot, records, CURVE_FIELDS)
    write_json(
        out.metrics, final_metrics(records, steps=trainer.step, temporal=train.temporal, skip_log=trainer.skip_log)
    )
    write_run_record(out.record, step_log.timings())
    print(f"rl: {trainer.step} steps -> {out.model}")


if __name__ == "__main__":
    main()
