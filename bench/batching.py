"""Benchmark: generation throughput by batch size, in the two stages that generate with a model: eval and CoT.

The pipeline's tiny ``models/base`` with a ``TransformersBackend``, through each stage's core:

* eval - ``evaluate_rows`` over the six synthetic benchmark files (``data/synth``, the first ``--rows`` / 6 rows of
         each, one call per file as the stage makes them), the tiny eval protocol at 8 frames;
* cot  - ``generate_cot`` with a ``ModelTeacher`` over ``--rows`` evenly spaced rows of ``data/collected.parquet``,
         the tiny cot stage's sampling (temperature 1.0, top_p 0.95) and media rules.

``--max-new-tokens`` (64) for both, shorter than the stages' 128 and 512 to keep the runs short. Configurations:
the baseline, batch 1 with one media worker (one row at a time, as the public scripts go), and batch B (B rows per
generate call, left padded, two media workers decoding ahead; 16 is both stages' default). Each run writes a fresh
result store; runs are interleaved ``--repeats`` times after a warm-up. For reference, the scripted teacher (the
tiny profile's default, no model) through the same ``generate_cot`` on every collected row.

    python -m bench.batching [--rows 144] [--batch-sizes 4,16,32] [--repeats 2] [--max-new-tokens 64]
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import polars as pl
import torch
import transformers

from bench import harness
from videor1.cot import ModelTeacher, ScriptedTeacher, generate_cot
from videor1.eval import EvalRun, ResultStore, evaluate_rows
from videor1.eval.protocol import resolve_protocol
from videor1.generation import SamplingConfig, TransformersBackend
from videor1.media import MediaRules
from videor1.models import load_model, load_processor, model_signature


def cot_run(rows: list[dict], teacher, batch: int):
    """One ``generate_cot`` pass into a fresh result store."""

    def run() -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            store = ResultStore(Path(tmp) / "cot.jsonl", fingerprint="bench", key="row_key")
            records, _ = generate_cot(rows, teacher, store, batch_size=batch)
        return {"rows": len(records), "tokens": sum(r["meta"].get("completion_tokens", 0) for r in records)}

    return run


def eval_run(rows_by_bench: dict[str, list[dict]], backend, run_cfg: EvalRun):
    """One eval pass over every benchmark file, each into a fresh result store (``evaluate_rows``)."""

    def run() -> dict:
        with tempfile.TemporaryDirectory() as tmp:
            stores = {b: ResultStore(Path(tmp) / f"{b}.jsonl", fingerprint=b) for b in rows_by_bench}
            done = [r for b, rows in rows_by_bench.items() for r in evaluate_rows(rows, backend, run_cfg, stores[b])[0]]
        tokens = sum(r.get("completion_tokens") or 0 for r in done)
        return {"rows": len(done), "tokens": tokens, "outputs": [r.get("output") for r in done]}

    return run


def summary(timings: dict[str, harness.Timing], configs: dict[str, tuple[int, int]]) -> list[dict]:
    speedups = harness.speedups(timings, "baseline")
    return [
        {
            "config": name,
            "batch": configs[name][0],
            "media workers": configs[name][1],
            "median s": t.median,
            "rows/s": t.results[0]["rows"] / t.median,
            "tokens/s": t.results[0]["tokens"] / t.median,
            "speed-up": f"{speedups[name]:.2f}x",
        }
        for name, t in timings.items()
    ]


def main() -> None:
    ap = harness.arguments(__doc__)
    ap.add_argument("--rows", type=int, default=144, help="rows per stage")
    ap.add_argument("--batch-sizes", default="4,16,32", help="comma-separated, beside the baseline's 1")
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root, p = harness.project("collect", "base_model"), harness.params()
    model_dir = root / "models" / "base"
    model, processor = load_model(model_dir), load_processor(model_dir)
    configs = {"baseline": (1, 1)} | {f"batch {b}": (int(b), 2) for b in args.batch_sizes.split(",")}

    e = p["eval"]
    protocol = resolve_protocol(e["protocol"], {**e["protocol_overrides"], "max_new_tokens": args.max_new_tokens})
    synth = root / e["benchmarks_dir"]
    per_file = max(1, args.rows // len(e["benchmarks"]))
    rows_by_bench = {b: json.loads((synth / f"eval_{b}.json").read_text())[:per_file] for b in e["benchmarks"]}
    eval_cases = {
        name: eval_run(
            rows_by_bench,
            TransformersBackend(model, processor, batch_size=batch),
            EvalRun(synth, protocol.rules(8), protocol.sampling(0), batch, workers, wording=protocol.wording),
        )
        for name, (batch, workers) in configs.items()
    }
    eval_rows = summary(harness.interleave(eval_cases, args.repeats), configs)

    c = p["cot"]
    collected = pl.read_parquet(root / "data" / "collected.parquet").to_dicts()
    collected = [{**r, "media_root": str(root / r["media_root"])} for r in collected]
    rows = [collected[i * len(collected) // args.rows] for i in range(min(args.rows, len(collected)))]
    sampling = SamplingConfig(temperature=c["temperature"], top_p=c["top_p"], max_new_tokens=args.max_new_tokens)
    signature = model_signature(model_dir)

    def teacher(batch: int, workers: int) -> ModelTeacher:
        backend = TransformersBackend(model, processor, batch_size=batch)
        limit = c["max_model_len"] - args.max_new_tokens
        return ModelTeacher(
            backend,
            processor,
            sampling=sampling,
            rules=MediaRules(**c["media"]),
            max_prompt_tokens=limit,
            model_signature=signature,
            backend_name="transformers",
            media_workers=workers,
        )

    cot_cases = {name: cot_run(rows, teacher(*config), config[0]) for name, config in configs.items()}
    cot_rows = summary(harness.interleave(cot_cases, args.repeats), configs)
    s = c["scripted"]
    scripted = ScriptedTeacher(root / s["facts"], split=s["split"], seed=s["seed"], spoil=s["spoil"])
    scripted_t = harness.interleave({"scripted": cot_run(collected, scripted, c["batch_size"])}, args.repeats)
    scripted_rate = len(collected) / scripted_t["scripted"].median

    md = [
        "# Generation throughput by batch size: eval and CoT (tiny model, CPU)",
        "",
        f"{args.max_new_tokens} new tokens, one torch thread, medians of {args.repeats} interleaved runs after a "
        "warm-up; speed-up against the baseline (batch 1, one media worker).",
        "",
        f"## Eval: `evaluate_rows`, {sum(map(len, rows_by_bench.values()))} rows of the six synthetic benchmark "
        f"files, 8 frames, protocol `{e['protocol']}` with the tiny profile's overrides",
        "",
        *harness.table(eval_rows),
        "",
        f"## CoT: `generate_cot` with the transformers teacher, {len(rows)} collected rows",
        "",
        *harness.table(cot_rows),
        "",
        f"The scripted teacher (no model) writes all {len(collected)} collected rows in "
        f"{scripted_t['scripted'].median:.2f} s ({scripted_rate:,.0f} rows/s).",
    ]
    record = {
        "config": vars(args),
        "eval": eval_rows,
        "cot": cot_rows,
        "scripted": {"rows": len(collected), **scripted_t["scripted"].summary()},
    }
    print(harness.write("batching", record, md, args.out, transformers=transformers.__version__))


if __name__ == "__main__":
    main()
