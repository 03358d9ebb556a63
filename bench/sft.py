"""Benchmark: SFT throughput (samples/s, tokens/s) and peak memory of the tiny model, by batch size.

The ``sft`` stage's core (``SftTrainer`` with ``SftCollator``, the tiny profile's media rules and learning rate, one
torch thread) on the pipeline's ``models/base`` and ``data/cot_filtered.parquet``, for ``--warmup`` + ``--steps``
optimizer steps per batch size. Each run is a fresh process (``bench.harness.in_fresh_process``), so its peak
memory (max RSS on CPU, max allocated on CUDA) is that batch size's alone; runs are interleaved over
``--repeats``. Throughput counts the steps after the warm-up, from a callback's timestamps; tokens are the
non-padding tokens of those batches. Batch 1, the only size the public code's collator supports, is the baseline.

    python -m bench.sft [--batch-sizes 1,4,8,16] [--steps 20] [--warmup 3] [--repeats 1]
"""

from __future__ import annotations

import functools
import statistics
import tempfile
import time
from pathlib import Path

import transformers

from bench import harness


def train(batch: int, steps: int, warmup: int, root: str) -> dict:
    """In a fresh process: ``warmup + steps`` SFT steps at ``batch``; the last ``steps`` timed."""
    import polars as pl
    import torch

    import videor1  # noqa: F401
    from videor1.media import MediaRules
    from videor1.models import load_model, load_processor
    from videor1.sft import SftCollator, SftConfig, SftDataset, SftTrainer, peak_memory_mb

    torch.set_num_threads(1)
    p = harness.params()["sft"]
    rows = [
        {**r, "media_root": str(Path(root) / r["media_root"])}
        for r in pl.read_parquet(f"{root}/data/cot_filtered.parquet").to_dicts()
    ]
    processor, model = load_processor(f"{root}/models/base"), load_model(f"{root}/models/base")
    collator, tokens, stamps = SftCollator(processor), [], []

    def counting(examples):
        out = collator(examples)
        tokens.append(int(out["attention_mask"].sum()) if "attention_mask" in out else 0)
        return out

    class Stamp(transformers.TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())

    with tempfile.TemporaryDirectory() as out:
        train_p = {**p["train"], "per_device_batch_size": batch, "max_steps": warmup + steps, "warmup_steps": 0}
        cfg = SftConfig(**{**train_p, "output_dir": out, "save_steps": 10**9, "use_cpu": not torch.cuda.is_available()})
        args = cfg.training_arguments()
        args.disable_tqdm = True
        dataset = SftDataset(rows, MediaRules(**p["media"]))
        SftTrainer(model=model, args=args, train_dataset=dataset, data_collator=counting, callbacks=[Stamp()]).train()
    seconds = stamps[-1] - stamps[warmup - 1]
    return {
        "s/step": seconds / steps,
        "samples/s": batch * steps / seconds,
        "tokens/s": sum(tokens[warmup : warmup + steps]) / seconds,
        "peak memory MB": peak_memory_mb(),
    }


def main() -> None:
    ap = harness.arguments(__doc__)
    ap.add_argument("--batch-sizes", default="1,4,8,16")
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=1)
    args = ap.parse_args()
    root = str(harness.project("filter", "base_model"))
    batches = [int(b) for b in args.batch_sizes.split(",")]
    cases = {b: functools.partial(harness.in_fresh_process, train, b, args.steps, args.warmup, root) for b in batches}
    timings = harness.interleave(cases, repeats=args.repeats, warmup=0)
    results = [{k: statistics.median(r[k] for r in timings[b].results) for k in timings[b].results[0]} for b in batches]
    base = results[0]["samples/s"]
    rows = [
        {"batch": b, **r, "speed-up (samples/s)": f"{r['samples/s'] / base:.2f}x"} for b, r in zip(batches, results)
    ]
    md = [
        "# SFT throughput and peak memory by batch size (tiny model, CPU)",
        "",
        f"{args.steps} timed steps after {args.warmup} warm-up steps, one torch thread, each run in its own process, "
        f"median of {args.repeats} interleaved run(s). Baseline: batch {batches[0]} (the only size the public "
        "code's SFT collator supports).",
        "",
        *harness.table(rows),
    ]
    record = {"config": vars(args), "results": rows}
    print(harness.write("sft", record, md, args.out, transformers=transformers.__version__))


if __name__ == "__main__":
    main()
