"""Benchmark: SFT throughput (samples/s, tokens/s) and peak memory of the tiny model, by batch size.

Runs the ``sft`` stage's core (``SftTrainer`` with ``SftCollator`` over
``models/base`` and ``data/cot_filtered.parquet``, tiny media rules, lr 2e-3,
one torch thread) for ``--warmup`` + ``--steps`` optimizer steps at each batch
size. Each configuration runs in its own process, so peak memory (max RSS on
CPU, max allocated on CUDA) is that configuration's alone. Throughput counts
only the steps after the warm-up, from a callback's timestamps; tokens are the
non-padding tokens of those batches. Batch 1 is the baseline: the only size the
public code's collator supports.

    python bench/bench_sft.py [--batch-sizes 1,4,8,16] [--steps 20] [--warmup 3] [--threads 1]

Results: bench/results/sft.json and sft.md.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench._env import code_version, machine_info  # noqa: E402

RESULTS = REPO / "bench" / "results"


def worker(batch: int, steps: int, warmup: int, threads: int) -> dict:
    """One configuration, in this process: train warmup + steps steps and time the last ``steps``."""
    import polars as pl
    import torch
    from transformers import TrainerCallback

    import videor1  # noqa: F401
    from videor1.media import MediaRules
    from videor1.models import load_model, load_processor
    from videor1.sft import SftCollator, SftConfig, SftDataset, SftTrainer, peak_memory_mb

    torch.set_num_threads(threads)
    rows = pl.read_parquet(REPO / "data" / "cot_filtered.parquet").to_dicts()
    for row in rows:
        row["media_root"] = str(REPO / row["media_root"])
    rules = MediaRules(
        max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056
    )
    processor = load_processor(REPO / "models" / "base")
    model = load_model(REPO / "models" / "base")
    collator = SftCollator(processor)
    tokens = []
    inner = collator.__call__

    def counting(examples):
        out = inner(examples)
        tokens.append(int(out["attention_mask"].sum()) if "attention_mask" in out else 0)
        return out

    stamps = []

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        cfg = SftConfig(
            output_dir=out,
            max_steps=warmup + steps,
            learning_rate=2e-3,
            per_device_batch_size=batch,
            gradient_accumulation_steps=1,
            bf16=False,
            gradient_checkpointing=False,
            deepspeed=None,
            save_steps=10**9,
            use_cpu=not torch.cuda.is_available(),
            warmup_steps=0,
        )
        args = cfg.training_arguments()
        args.disable_tqdm = True
        trainer = SftTrainer(
            model=model, args=args, train_dataset=SftDataset(rows, rules), data_collator=counting, callbacks=[Stamp()]
        )
        trainer.train()
    seconds = stamps[-1] - stamps[warmup - 1]
    timed_tokens = sum(tokens[warmup : warmup + steps])
    return {
        "batch": batch,
        "steps": steps,
        "seconds": round(seconds, 3),
        "samples_per_s": round(batch * steps / seconds, 2),
        "tokens_per_s": round(timed_tokens / seconds, 1),
        "s_per_step": round(seconds / steps, 4),
        "peak_memory_mb": round(peak_memory_mb(), 1),
    }


def markdown(report: dict) -> str:
    base = report["results"][0]
    lines = [
        "# SFT throughput and peak memory (tiny model, CPU)",
        "",
        f"{report['config']['steps']} timed steps after {report['config']['warmup']} warm-up steps, "
        f"{report['config']['threads']} torch thread(s); each batch size in its own process.",
        "",
        "| batch | s/step | samples/s | tokens/s | speed-up (samples/s) | peak memory MB |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['batch']} | {r['s_per_step']} | {r['samples_per_s']} | {r['tokens_per_s']} | "
            f"{r['samples_per_s'] / base['samples_per_s']:.2f}x | {r['peak_memory_mb']} |"
        )
    lines += ["", f"Baseline: batch {base['batch']} (the only batch size the public code's SFT collator supports)."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--batch-sizes", default="1,4,8,16")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--worker", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker, args.steps, args.warmup, args.threads)))
        return
    results = []
    for batch in [int(b) for b in args.batch_sizes.split(",")]:
        out = subprocess.run(
            [
                sys.executable,
                __file__,
                "--worker",
                str(batch),
                "--steps",
                str(args.steps),
                "--warmup",
                str(args.warmup),
                "--threads",
                str(args.threads),
            ],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        results.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(results[-1], flush=True)
    import transformers

    report = {
        "config": {"steps": args.steps, "warmup": args.warmup, "threads": args.threads},
        "results": results,
        "code": code_version(),
        "machine": machine_info(transformers=transformers.__version__),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "sft.json").write_text(json.dumps(report, indent=1) + "\n")
    (RESULTS / "sft.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
