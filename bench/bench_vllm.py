"""Benchmark: vLLM against transformers on the tiny profile, for RL rollouts and an eval pass.

Both backends run the same model directory (``models/sft``: the tiny SFT model, which writes ~70-token
rationales; ``--model`` to change) in this process, one torch thread each, fp32:

* rollouts - ``videor1.rl.rollout`` over ``--prompts`` collected rows per step (``data/collected.parquet``),
  G = 4 ordered completions plus G/2 on shuffled frames for videos, temperature 1, 128 new tokens (the tiny
  ``rl.train`` settings), ``--repeats`` steps each with a new seed. Reported: generated tokens/s and the
  mean number of distinct completions per ordered group.
* eval     - ``videor1.eval.evaluate_rows`` over the six synthetic benchmark files at 8 frames, the paper's
  decoding (temperature 0.01, top_p 0.001), 128 new tokens, batch 16 (the tiny ``eval`` settings); a fresh
  result store each repeat. Reported: rows/s, generated tokens/s, and how many rows' outputs are equal on the
  two backends.

The baseline is the transformers backend in the same run; vLLM's engine start-up is timed separately and
left out of the rates. Results: ``bench/results/vllm.json`` and ``vllm.md``.

    python bench/bench_vllm.py [--model models/sft] [--prompts 8] [--repeats 3] [--threads 1]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
for path in (REPO, REPO / "bench"):
    if str(path) not in sys.path:
        sys.path.insert(0, str(path))

import polars as pl  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from _env import code_version, machine_info  # noqa: E402

from videor1.eval import EvalRun, ResultStore, evaluate_rows  # noqa: E402
from videor1.generation import SamplingConfig, TransformersBackend  # noqa: E402
from videor1.generation.vllm_engine import VLLMBackend  # noqa: E402
from videor1.media import MediaRules, load_medium  # noqa: E402
from videor1.models import load_model, load_processor  # noqa: E402
from videor1.rl.rollout import distinct_completions, rollout  # noqa: E402

RESULTS = REPO / "bench" / "results"
BENCHMARKS = ("mvbench", "tempcompass", "videomme", "videommmu", "vsibench", "mmvu")
RULES = MediaRules(
    fps=2.0,
    min_frames=4,
    max_frames=8,
    video_min_pixels=3136,
    video_max_pixels=3136,
    image_min_pixels=3136,
    image_max_pixels=7056,
)


def rollout_pass(backend, processor, rows, media, seed: int) -> tuple[float, int, float]:
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=128)
    start = time.perf_counter()
    groups = rollout(backend, processor, rows, media, num_generations=4, temporal=True, sampling=sampling, seed=seed)
    seconds = time.perf_counter() - start
    tokens = sum(len(c.token_ids) for g in groups for c in g.ordered + g.shuffled)
    return seconds, tokens, statistics.mean(distinct_completions(g) for g in groups)


def eval_pass(backend, bench_dir: Path) -> tuple[float, int, list[dict]]:
    run = EvalRun(
        media_root=bench_dir,
        rules=RULES,
        sampling=SamplingConfig(temperature=0.01, top_p=0.001, max_new_tokens=128),
        batch_size=16,
    )
    results, seconds = [], 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for bench in BENCHMARKS:
            rows = json.loads((bench_dir / f"eval_{bench}.json").read_text())
            start = time.perf_counter()
            out, _ = evaluate_rows(rows, backend, run, ResultStore(Path(tmp) / f"{bench}.jsonl", "bench"))
            seconds += time.perf_counter() - start
            results += out
    return seconds, sum(r.get("completion_tokens") or 0 for r in results), results


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/sft")
    ap.add_argument("--bench-dir", default="data/synth")
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model_dir, bench_dir = REPO / args.model, REPO / args.bench_dir
    if not (model_dir / "config.json").exists():
        sys.exit(f"{model_dir} is missing: run `dvc repro sft` first")
    table = pl.read_parquet(REPO / "data" / "collected.parquet").head(args.prompts).to_dicts()
    media = [load_medium(Path(r["media_root"]) / r["path"], r["data_type"], RULES) for r in table]

    processor = load_processor(model_dir)
    hf = TransformersBackend(load_model(model_dir), processor, batch_size=64)
    start = time.perf_counter()
    vllm_backend = VLLMBackend(str(model_dir), max_model_len=4096, dtype="float32")
    engine_start = time.perf_counter() - start
    torch.set_num_threads(args.threads)
    backends = {"transformers": hf, "vllm": vllm_backend}

    for backend in backends.values():  # warm-up, untimed
        rollout_pass(backend, processor, table[:2], media[:2], seed=999)
    rollouts = {name: [] for name in backends}
    evals = {name: [] for name in backends}
    outputs = {}
    for repeat in range(args.repeats):  # interleaved, so drifts in machine load hit both alike
        for name, backend in backends.items():
            rollouts[name].append(rollout_pass(backend, processor, table, media, seed=repeat))
            seconds, tokens, results = eval_pass(backend, bench_dir)
            evals[name].append((seconds, tokens, len(results)))
            outputs[name] = [r.get("output") for r in results]

    def summary(runs: list[tuple]) -> dict:
        best = min(runs, key=lambda r: r[0])
        return {
            "median_s": round(statistics.median(r[0] for r in runs), 3),
            "best_s": round(best[0], 3),
            "tokens": best[1],
            "tokens_per_s": round(best[1] / best[0], 1),
        }

    report = {"rollout": {}, "eval": {}}
    for name in backends:
        report["rollout"][name] = {
            **summary(rollouts[name]),
            "distinct_completions": round(statistics.mean(r[2] for r in rollouts[name]), 2),
        }
        report["eval"][name] = {
            **summary(evals[name]),
            "rows": evals[name][0][2],
            "rows_per_s": round(evals[name][0][2] / min(r[0] for r in evals[name]), 2),
        }
    for part in ("rollout", "eval"):
        base = report[part]["transformers"]["tokens_per_s"]
        report[part]["vllm"]["tokens_per_s_ratio"] = round(report[part]["vllm"]["tokens_per_s"] / base, 2)
    equal = sum(a == b for a, b in zip(outputs["vllm"], outputs["transformers"]))
    report["eval"]["outputs_equal"] = f"{equal} of {len(outputs['vllm'])}"
    result = {
        "benchmark": "vllm",
        "model": args.model,
        "prompts_per_step": args.prompts,
        "repeats": args.repeats,
        "threads": args.threads,
        "vllm_engine_start_s": round(engine_start, 1),
        **report,
        "code": code_version(),
        "machine": machine_info(transformers=transformers.__version__, vllm=__import__("vllm").__version__),
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "vllm.json").write_text(json.dumps(result, indent=2) + "\n")
    r, e = report["rollout"], report["eval"]
    lines = [
        "# vLLM against transformers (tiny profile, CPU)",
        "",
        f"Model `{args.model}` (fp32), {args.threads} torch thread(s), best of {args.repeats} interleaved repeats; "
        f"vLLM engine start-up {result['vllm_engine_start_s']} s (not in the rates).",
        "",
        "| pass | backend | best s | tokens | tokens/s | ratio to transformers | notes |",
        "|---|---|---|---|---|---|---|",
        f"| rollout ({args.prompts} prompts, G=4 + G/2 shuffled, 128 new tokens) | transformers | {r['transformers']['best_s']} | "
        f"{r['transformers']['tokens']} | {r['transformers']['tokens_per_s']} | 1.00 | distinct per group {r['transformers']['distinct_completions']} |",
        f"| | vLLM | {r['vllm']['best_s']} | {r['vllm']['tokens']} | {r['vllm']['tokens_per_s']} | {r['vllm']['tokens_per_s_ratio']} | "
        f"distinct per group {r['vllm']['distinct_completions']} |",
        f"| eval ({e['transformers']['rows']} rows, 8 frames, batch 16) | transformers | {e['transformers']['best_s']} | "
        f"{e['transformers']['tokens']} | {e['transformers']['tokens_per_s']} | 1.00 | {e['transformers']['rows_per_s']} rows/s |",
        f"| | vLLM | {e['vllm']['best_s']} | {e['vllm']['tokens']} | {e['vllm']['tokens_per_s']} | {e['vllm']['tokens_per_s_ratio']} | "
        f"{e['vllm']['rows_per_s']} rows/s; outputs equal to transformers: {e['outputs_equal']} |",
        "",
    ]
    (RESULTS / "vllm.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
