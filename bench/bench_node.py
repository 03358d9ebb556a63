"""Benchmark: the RL stage's start-up and weight sync on 2 gloo ranks, before and after issue 22.

Start-up: each rank's peak resident memory (VmHWM, reset just before loading, less the resident memory then)
while policy (fp32) and reference (bf16) load, on a 62M-parameter Qwen2.5-VL (16 layers of 512) saved in bf16:
``sharded`` (``load_sharded_models``: meta device, shard, rank 0 broadcasts a tensor at a time) against
``replicated`` (the old path: every rank loads the full fp32 policy, deep-copies it for the reference, shards).
Sync: the full tensors alive at once during one weight sync on 2 ranks of the tiny model, streamed (bucket 0)
against one full gather, into vLLM's engine and into a transformers copy (``tests/dist/rl_node.py``). Both are
ratios within one run. Results: ``bench/results/node.json`` and ``node.md``.

    python bench/bench_node.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _env import code_version, machine_info  # noqa: E402  (bench/ is on sys.path)

RESULTS = REPO / "bench" / "results"


def torchrun(script: str, *args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(REPO / "tests" / "dist" / script),
            *args,
        ],
        env=env,
        check=True,
        capture_output=True,
    )


def build_models(root: Path) -> tuple[Path, Path, Path]:
    """The tiny model and its synthetic set (as tests/conftest.py builds them) and the 62M-parameter one."""
    from videor1.data.synth import SynthConfig, SynthSpec, generate
    from videor1.models import TinyModelConfig, build_processor, build_tiny_model, save_model_dir, train_bpe_tokenizer
    from videor1.prompts import prompt_text

    synth = root / "synth"
    generate(
        synth,
        SynthConfig(
            seed=0, train_video_rows=12, train_image_rows=10, eval_rows_per_benchmark=4, spec=SynthSpec(hold=5)
        ),
    )
    rows = json.loads((synth / "train.json").read_text())
    tokenizer = train_bpe_tokenizer([prompt_text(r) for r in rows] + [r["solution"] for r in rows], 400)
    processor = build_processor(
        tokenizer, image_min_pixels=3136, image_max_pixels=7056, video_min_pixels=3136, video_max_pixels=3136
    )
    save_model_dir(build_tiny_model(TinyModelConfig(seed=0), tokenizer), processor, root / "tiny")
    medium = build_tiny_model(
        TinyModelConfig(
            hidden_size=512,
            intermediate_size=2048,
            num_hidden_layers=16,
            mrope_section=[16, 24, 24],
            tie_word_embeddings=False,
        ),
        tokenizer,
    )
    save_model_dir(medium.to(torch.bfloat16), processor, root / "medium")
    return synth, root / "tiny", root / "medium"


def main() -> None:
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        synth, tiny, medium = build_models(root)
        startup = {}
        for how in ("sharded", "replicated"):
            torchrun("startup_memory.py", str(medium), str(root / f"{how}.json"), how)
            startup[how] = json.loads((root / f"{how}.json").read_text())
        torchrun("rl_node.py", str(tiny), str(synth), str(root / "node"), str(root / "node.pt"))
        node = torch.load(root / "node.pt", weights_only=False)
    full = startup["sharded"]["full_fp32_bytes"]
    sync = node["ranks"][0]
    report = {
        "code": code_version(),
        "machine": machine_info(),
        "full_fp32_mb": full / 1e6,
        "startup_extra_peak_mb": {how: [r["extra_peak_bytes"] / 1e6 for r in s["ranks"]] for how, s in startup.items()},
        "startup_bound_mb": [(full + r["shard_fp32_bytes"]) / 1e6 for r in startup["sharded"]["ranks"]],
        "sync_live_bytes": {
            k: sync[k]
            for k in (
                "weights_bytes",
                "largest_tensor_bytes",
                "gather_peak_full",
                "gather_peak_streamed",
                "sync_peak_full_gather",
                "sync_peak_streamed",
            )
        },
    }
    report["sync_ratio_streamed_to_full"] = {
        "transformers copy": sync["gather_peak_streamed"] / sync["gather_peak_full"],
        "vllm engine": sync["sync_peak_streamed"] / sync["sync_peak_full_gather"],
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "node.json").write_text(json.dumps(report, indent=1))
    sharded, replicated = report["startup_extra_peak_mb"]["sharded"], report["startup_extra_peak_mb"]["replicated"]
    lines = [
        "# RL start-up and weight sync on 2 gloo ranks (`python bench/bench_node.py`)",
        "",
        f"Commit {report['code']['commit'][:10]}; {report['machine']['platform']}, torch {report['machine']['torch']}.",
        "",
        f"Start-up, a model of {full / 1e6:.0f} MB in fp32 (checkpoint in bf16): peak resident memory beyond the "
        "process's own, per rank (MB)",
        "",
        "| path | rank 0 | rank 1 | bound: fp32 replica + shard |",
        "|---|---|---|---|",
        f"| sharded as it loads (now) | {sharded[0]:.0f} | {sharded[1]:.0f} | {report['startup_bound_mb'][0]:.0f} |",
        f"| full load + deepcopy per rank (before) | {replicated[0]:.0f} | {replicated[1]:.0f} | |",
        "",
        f"Ratio now / before: rank 0 {sharded[0] / replicated[0]:.2f}, rank 1 {sharded[1] / replicated[1]:.2f}.",
        "",
        "Weight sync, the tiny model (2.6 MB in fp32): full tensors alive at once (bytes)",
        "",
        "| into | full gather | streamed (one tensor a bucket) | ratio |",
        "|---|---|---|---|",
        f"| transformers copy | {sync['gather_peak_full']:,} | {sync['gather_peak_streamed']:,} | "
        f"{report['sync_ratio_streamed_to_full']['transformers copy']:.2f} |",
        f"| vLLM engine (reload keeps a layer) | {sync['sync_peak_full_gather']:,} | {sync['sync_peak_streamed']:,} | "
        f"{report['sync_ratio_streamed_to_full']['vllm engine']:.2f} |",
        "",
    ]
    (RESULTS / "node.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
