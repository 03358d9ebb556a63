"""Benchmark: the RL stage's start-up and weight sync on 2 gloo ranks, before and after issue 22, as ratios in one run.

Start-up: each rank's peak resident memory (VmHWM, reset just before loading, less the resident memory then) while
policy (fp32) and reference (bf16) load, on a 62M-parameter Qwen2.5-VL (16 layers of 512) saved in bf16: sharded
as it loads (``load_sharded_models``, rank 0 broadcasting a tensor at a time) against replicated (every rank loads
the full fp32 policy and deep-copies it for the reference; ``tests/dist/startup_memory.py``). Sync: the full
tensors alive at once during one weight sync of the tiny model on 2 ranks, streamed against one full gather, into
vLLM's engine and into a transformers copy (``tests/dist/rl_node.py``). Models and data from the pipeline's
generators (``videor1.data.synth``, ``videor1.models``), as tests/conftest.py builds them.

    python -m bench.node
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from bench import harness
from videor1.data.synth import SynthConfig, SynthSpec, generate
from videor1.models import TinyModelConfig, build_processor, build_tiny_model, save_model_dir, train_bpe_tokenizer
from videor1.prompts import prompt_text


def torchrun(script: str, *args) -> None:
    env = {**os.environ, "PYTHONPATH": str(harness.REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"]
    subprocess.run([*cmd, str(harness.REPO / "tests" / "dist" / script), *map(str, args)], env=env, check=True)


def build(root: Path) -> None:
    """data/synth, the tiny model (``tiny``) and the 62M-parameter one (``medium``, bf16)."""
    spec = SynthSpec(hold=5)
    generate(
        root / "synth", SynthConfig(train_video_rows=12, train_image_rows=10, eval_rows_per_benchmark=4, spec=spec)
    )
    rows = json.loads((root / "synth" / "train.json").read_text())
    tokenizer = train_bpe_tokenizer([prompt_text(r) for r in rows] + [r["solution"] for r in rows], 400)
    pixels = dict(image_min_pixels=3136, image_max_pixels=7056, video_min_pixels=3136, video_max_pixels=3136)
    processor = build_processor(tokenizer, **pixels)
    save_model_dir(build_tiny_model(TinyModelConfig(seed=0), tokenizer), processor, root / "tiny")
    medium = TinyModelConfig(
        hidden_size=512,
        intermediate_size=2048,
        num_hidden_layers=16,
        mrope_section=[16, 24, 24],
        tie_word_embeddings=False,
    )
    save_model_dir(build_tiny_model(medium, tokenizer).to(torch.bfloat16), processor, root / "medium")


def main() -> None:
    args = harness.arguments(__doc__).parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        build(root)
        startup = {}
        for how in ("sharded", "replicated"):
            torchrun("startup_memory.py", root / "medium", root / f"{how}.json", how)
            startup[how] = json.loads((root / f"{how}.json").read_text())
        torchrun("rl_node.py", root / "tiny", root / "synth", root / "node", root / "node.pt")
        sync = torch.load(root / "node.pt", weights_only=False)["ranks"][0]
    full_mb = startup["sharded"]["full_fp32_bytes"] / 1e6
    peaks = {how: [r["extra_peak_bytes"] / 1e6 for r in s["ranks"]] for how, s in startup.items()}
    bound = [full_mb + r["shard_fp32_bytes"] / 1e6 for r in startup["sharded"]["ranks"]]
    start_rows = [
        {"path": "sharded as it loads (now)", "rank 0 MB": peaks["sharded"][0], "rank 1 MB": peaks["sharded"][1]},
        {
            "path": "full load + deepcopy per rank (before)",
            "rank 0 MB": peaks["replicated"][0],
            "rank 1 MB": peaks["replicated"][1],
        },
        {"path": "now / before", **{f"rank {i} MB": peaks["sharded"][i] / peaks["replicated"][i] for i in (0, 1)}},
        {"path": "bound: one fp32 replica + shard", "rank 0 MB": bound[0], "rank 1 MB": bound[1]},
    ]
    sync_rows = [
        {
            "into": into,
            "full gather": sync[full],
            "streamed (one tensor a bucket)": sync[streamed],
            "ratio": sync[streamed] / sync[full],
        }
        for into, full, streamed in (
            ("transformers copy", "gather_peak_full", "gather_peak_streamed"),
            ("vLLM engine (reload keeps a layer)", "sync_peak_full_gather", "sync_peak_streamed"),
        )
    ]
    md = [
        "# RL start-up and weight sync on 2 gloo ranks: before and after issue 22",
        "",
        f"Start-up of a model of {full_mb:.0f} MB in fp32 (checkpoint in bf16): peak resident memory beyond the "
        "process's own, per rank.",
        "",
        *harness.table(start_rows),
        "",
        f"Weight sync of the tiny model ({sync['weights_bytes'] / 1e6:.1f} MB in fp32): bytes of full tensors alive at once.",
        "",
        *harness.table(sync_rows),
    ]
    record = {
        "full_fp32_mb": full_mb,
        "startup": start_rows,
        "sync": sync_rows,
        "sync_live_bytes": {k: v for k, v in sync.items() if isinstance(v, int)},
    }
    print(harness.write("node", record, md, args.out))


if __name__ == "__main__":
    main()
