"""Benchmark: vLLM (its CPU build here) against transformers on the tiny SFT model, for RL rollouts and an eval pass.

Both backends run the pipeline's ``models/sft`` (it writes ~70-token rationales) in this process, one torch
thread, fp32:

* rollout - ``videor1.rl.rollout`` over ``--prompts`` collected rows, G = 4 ordered completions plus G/2 on
            shuffled frames for videos, temperature 1, 128 new tokens (the tiny ``rl.train`` settings), a new
            seed each repeat; generated tokens/s and distinct completions per group;
* eval    - ``evaluate_rows`` over the six synthetic benchmark files at 8 frames, the paper's decoding
            (temperature 0.01, top_p 0.001), 128 new tokens, batch 16 (the tiny ``eval`` settings), a fresh result
            store each repeat; rows/s, tokens/s and how many rows' outputs the two backends share.

Passes interleaved ``--repeats`` times after a warm-up; vLLM's engine start-up is timed apart, outside the rates.

    python -m bench.vllm [--prompts 8] [--repeats 3]
"""

from __future__ import annotations

import json
import statistics
import time

import polars as pl
import torch
import transformers

from bench import harness
from bench.batching import eval_run
from videor1.eval import EvalRun
from videor1.generation import SamplingConfig, TransformersBackend
from videor1.generation.vllm_engine import VLLMBackend
from videor1.media import MediaRules, load_medium
from videor1.models import load_model, load_processor
from videor1.rl.rollout import distinct_completions, rollout

BENCHMARKS = ("mvbench", "tempcompass", "videomme", "videommmu", "vsibench", "mmvu")


def main() -> None:
    ap = harness.arguments(__doc__)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root, p = harness.project("sft"), harness.params()
    model_dir, synth = root / "models" / "sft", root / "data" / "synth"
    rules = MediaRules(**p["rl"]["media"])
    table = pl.read_parquet(root / "data" / "collected.parquet").head(args.prompts).to_dicts()
    media = [load_medium(root / r["media_root"] / r["path"], r["data_type"], rules) for r in table]
    processor = load_processor(model_dir)
    backends = {"transformers": TransformersBackend(load_model(model_dir), processor, batch_size=64)}
    start = time.perf_counter()
    backends["vllm"] = VLLMBackend(str(model_dir), max_model_len=4096, dtype="float32")
    engine_s = time.perf_counter() - start
    torch.set_num_threads(1)  # vLLM's engine sets its own
    eval_rows = {b: json.loads((synth / f"eval_{b}.json").read_text()) for b in BENCHMARKS}
    eval_cfg = EvalRun(synth, rules, SamplingConfig(temperature=0.01, top_p=0.001, max_new_tokens=128), batch_size=16)
    seeds = iter(range(10**6))

    def rollout_pass(backend):
        sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=128)
        groups = rollout(
            backend, processor, table, media, num_generations=4, temporal=True, sampling=sampling, seed=next(seeds)
        )
        tokens = sum(len(c.token_ids) for g in groups for c in g.ordered + g.shuffled)
        return {"tokens": tokens, "distinct per group": statistics.mean(distinct_completions(g) for g in groups)}

    cases = {
        f"{part} {name}": (lambda f=f, b=b: f(b))
        for part, f in (("rollout", rollout_pass), ("eval", lambda b: eval_run(eval_rows, b, eval_cfg)()))
        for name, b in backends.items()
    }
    timings = harness.interleave(cases, args.repeats)
    outputs = {b: timings[f"eval {b}"].results[-1]["outputs"] for b in backends}
    equal = sum(a == b for a, b in zip(outputs["transformers"], outputs["vllm"]))
    notes = {
        f"rollout {b}": f"distinct per group {timings[f'rollout {b}'].results[0]['distinct per group']:.2f}"
        for b in backends
    }
    notes |= {f"eval {b}": f"{len(outputs[b]) / timings[f'eval {b}'].median:.1f} rows/s" for b in backends}
    notes["eval vllm"] += f"; outputs equal to transformers': {equal} of {len(outputs['vllm'])}"
    rate = {name: statistics.median(r["tokens"] for r in t.results) / t.median for name, t in timings.items()}
    rows = [
        {
            "pass": name,
            "median s": t.median,
            "tokens/s": rate[name],
            "ratio to transformers": rate[name] / rate[name.split()[0] + " transformers"],
            "notes": notes[name],
        }
        for name, t in timings.items()
    ]
    md = [
        "# vLLM against transformers (tiny SFT model, CPU)",
        "",
        f"fp32, one torch thread, medians of {args.repeats} interleaved repeats; rollout: {args.prompts} prompts, "
        f"G = 4 + G/2 shuffled, 128 new tokens; eval: {len(outputs['vllm'])} rows, 8 frames, batch 16. vLLM's engine "
        f"start-up: {engine_s:.1f} s (not in the rates).",
        "",
        *harness.table(rows),
    ]
    record = {"config": vars(args), "engine_start_s": engine_s, "results": rows, "eval_outputs_equal": equal}
    print(
        harness.write(
            "vllm", record, md, args.out, transformers=transformers.__version__, vllm=__import__("vllm").__version__
        )
    )


if __name__ == "__main__":
    main()
