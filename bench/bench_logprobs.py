"""Benchmark: the RL update's log-prob path, before and after issue 23 (items 2 and 3), as ratios in one run.

1. The vision tower once per group: one forward + backward of ``separate_logprobs`` (gradient checkpointing, G = 8
   completions of 64 tokens, a 16-frame 112 × 112 video on the tiny model) with the tower run once and its output
   shared by the 8 rows, against the path as it was (the pixels repeated 8 times). Seconds (median of
   ``--repeats``) and peak live-tensor bytes (``videor1.plan.PeakTensorMemory``).
2. Log-probs without full-vocabulary logits: the selected tokens' log-probs and their backward at Qwen's
   151,665-token vocabulary (the tokenizer's size) for ``--tokens`` completion positions, chunked (1,024 and 256
   positions at a time) against one ``[tokens × vocab]`` fp32 computation. Peak live-tensor bytes and seconds.

Results: ``bench/results/logprobs.json`` and ``logprobs.md``.

    python bench/bench_logprobs.py [--repeats 3] [--tokens 3072]
"""

from __future__ import annotations

import argparse
import functools
import json
import statistics
import sys
import time
from pathlib import Path

import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _env import code_version, machine_info  # noqa: E402  (bench/ is on sys.path)

from videor1.plan import PeakTensorMemory  # noqa: E402
from videor1.rl.policy import chunked_token_logprobs, completion_batch, separate_logprobs, token_logprobs  # noqa: E402

RESULTS = REPO / "bench" / "results"
QWEN_VOCAB = 151_665


def tiny_model_and_prompt(frames: int = 16, size: int = 112):
    """The tiny Qwen2.5-VL (random weights, a 4,096-token vocabulary) and one video prompt as the processor makes it."""
    from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

    from videor1.models.rope import use_reference_positions

    text = dict(
        hidden_size=128,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]},
        vocab_size=4096,
        vision_start_token_id=4092,
        vision_end_token_id=4093,
        image_token_id=4094,
        video_token_id=4095,
    )
    vision = dict(
        depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=128, fullatt_block_indexes=[1]
    )
    config = Qwen2_5_VLConfig(
        text_config=text, vision_config=vision, **{k: text[k] for k in text if k.endswith("token_id")}
    )
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.float32)
    use_reference_positions(model)
    grid = torch.tensor([[frames // 2, size // 14, size // 14]])
    tokens = int(grid.prod()) // 4
    ids = torch.cat(
        [
            torch.randint(10, 4000, (40,)),
            torch.tensor([4092]),
            torch.full((tokens,), 4095),
            torch.tensor([4093]),
            torch.randint(10, 4000, (40,)),
        ]
    ).unsqueeze(0)
    kinds = (ids == 4095).long() * 2
    prompt = {
        "input_ids": ids,
        "attention_mask": torch.ones_like(ids),
        "mm_token_type_ids": kinds,
        "pixel_values_videos": torch.randn(int(grid.prod()), 3 * 2 * 14 * 14),
        "video_grid_thw": grid,
        "second_per_grid_ts": torch.tensor([1.25]),
    }
    return model.train(), prompt


def measure(step, repeats: int) -> dict:
    step()  # warm-up
    seconds = []
    for _ in range(repeats):
        start = time.perf_counter()
        step()
        seconds.append(time.perf_counter() - start)
    with PeakTensorMemory() as memory:
        step()
    return {"seconds": statistics.median(seconds), "peak_bytes": memory.peak}


def vision_once_case(repeats: int) -> dict:
    model, prompt = tiny_model_and_prompt()
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    ids, mask = completion_batch([[5 + j] * (64 - j) for j in range(8)], 0, "cpu")

    def step(logprobs):
        model.zero_grad(set_to_none=True)
        (logprobs(model, prompt, ids, mask) * mask).sum().backward()

    before = measure(lambda: step(functools.partial(separate_logprobs, chunk_tokens=None, share_vision=False)), repeats)
    after = measure(lambda: step(separate_logprobs), repeats)
    return {"before": before, "after": after, "video_tokens": int(prompt["video_grid_thw"].prod()) // 4, "G": 8}


def chunked_case(tokens: int, repeats: int) -> dict:
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(128, QWEN_VOCAB, bias=False)
    hidden = torch.randn(1, tokens, 128, generator=g, requires_grad=True)
    ids = torch.randint(0, QWEN_VOCAB, (1, tokens), generator=g)

    def step(chunk):
        head.zero_grad(set_to_none=True)
        hidden.grad = None
        logp = token_logprobs(head(hidden), ids) if chunk is None else chunked_token_logprobs(hidden, head, ids, chunk)
        logp.sum().backward()

    return {
        "tokens": tokens,
        "vocab": QWEN_VOCAB,
        **{str(chunk): measure(lambda: step(chunk), repeats) for chunk in (None, 1024, 256)},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=3072)
    args = ap.parse_args()
    torch.set_num_threads(1)
    vision = vision_once_case(args.repeats)
    chunks = chunked_case(args.tokens, args.repeats)
    report = {"code": code_version(), "machine": machine_info(), "vision_once": vision, "chunked_logprobs": chunks}
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "logprobs.json").write_text(json.dumps(report, indent=1))
    b, a, full = vision["before"], vision["after"], chunks["None"]
    lines = [
        "# The RL update's log-prob path (`python bench/bench_logprobs.py`)",
        "",
        f"Commit {report['code']['commit'][:10]}; {report['machine']['platform']}, torch {report['machine']['torch']}, one thread.",
        "",
        f"## The vision tower once per group (gradient checkpointing, G = 8, a 16-frame video: {vision['video_tokens']} "
        "video tokens, the tiny model)",
        "",
        "| path | seconds (forward + backward) | peak live tensors (MB) |",
        "|---|---|---|",
        f"| pixels repeated, the tower on 8 copies (before) | {b['seconds']:.3f} | {b['peak_bytes'] / 1e6:.1f} |",
        f"| the tower once, its output shared (now) | {a['seconds']:.3f} | {a['peak_bytes'] / 1e6:.1f} |",
        "",
        f"Ratio now / before: time {a['seconds'] / b['seconds']:.2f}, peak {a['peak_bytes'] / b['peak_bytes']:.2f}.",
        "",
        f"## Log-probs at Qwen's {QWEN_VOCAB:,}-token vocabulary, {chunks['tokens']:,} positions (forward + backward)",
        "",
        "| path | seconds | peak live tensors (GB) | peak / full |",
        "|---|---|---|---|",
        f"| full `[tokens × vocab]` fp32 logits (before) | {full['seconds']:.2f} | {full['peak_bytes'] / 1e9:.2f} | 1.00 |",
        *[
            f"| chunks of {c} positions (now{', the default' if c == '1024' else ''}) | {chunks[c]['seconds']:.2f} | "
            f"{chunks[c]['peak_bytes'] / 1e9:.2f} | {chunks[c]['peak_bytes'] / full['peak_bytes']:.2f} |"
            for c in ("1024", "256")
        ],
        "",
    ]
    (RESULTS / "logprobs.md").write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
