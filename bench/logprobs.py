"""Benchmark: the RL update's log-prob path, before and after issue 23 (items 2 and 3), as ratios in one run.

1. The vision tower once per group: forward + backward of ``separate_logprobs`` (gradient checkpointing, G = 8
   completions of up to 64 tokens, a 16-frame 112 × 112 video, ``bench/gpu_step.py``'s toy Qwen2.5-VL) with the
   tower run once and its output shared by the 8 rows, against the pixels repeated 8 times (the path before).
2. No full-vocabulary logits: the selected tokens' log-probs and their backward at Qwen's 151,665-token vocabulary
   for ``--tokens`` positions, in chunks of 1,024 and 256 positions, against one ``[tokens × vocab]`` fp32 pass.

Seconds (medians of interleaved runs) and peak live-tensor bytes (``bench.harness.tensor_peak``).

    python -m bench.logprobs [--repeats 3] [--tokens 3072]
"""

from __future__ import annotations

import functools
import json

import torch
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from bench import harness
from bench.gpu_step import TINY_TEXT, TINY_VISION, video_prompt
from videor1.models.rope import use_reference_positions
from videor1.plan import CONFIGS
from videor1.rl.policy import chunked_token_logprobs, completion_batch, separate_logprobs, token_logprobs

QWEN_VOCAB = 151_665


def vision_once(repeats: int) -> tuple[list[dict], int]:
    raw = json.loads((CONFIGS / "qwen2_5_vl_7b.json").read_text())
    config = Qwen2_5_VLConfig(**{**raw, **TINY_TEXT, "vision_config": {**raw["vision_config"], **TINY_VISION}})
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.float32).train()
    use_reference_positions(model)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    prompt = {
        k: v.float() if v.is_floating_point() else v
        for k, v in video_prompt(config, 16, 112 * 112, 80, "cpu", 0).items()
    }
    ids, mask = completion_batch([[1005 + j] * (64 - j) for j in range(8)], 0, "cpu")

    def step(logprobs):
        model.zero_grad(set_to_none=True)
        (logprobs(model, prompt, ids, mask) * mask).sum().backward()

    cases = {
        "pixels repeated, the tower on 8 copies (before)": functools.partial(
            step, functools.partial(separate_logprobs, chunk_tokens=None, share_vision=False)
        ),
        "the tower once, its output shared (now)": functools.partial(step, separate_logprobs),
    }
    return measure(cases, repeats, peak_unit=("MB", 1e6)), int(prompt["video_grid_thw"].prod()) // 4


def chunked(tokens: int, repeats: int) -> list[dict]:
    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(128, QWEN_VOCAB, bias=False)
    hidden = torch.randn(1, tokens, 128, generator=g, requires_grad=True)
    ids = torch.randint(0, QWEN_VOCAB, (1, tokens), generator=g)

    def step(chunk: int | None):
        head.zero_grad(set_to_none=True)
        hidden.grad = None
        logp = token_logprobs(head(hidden), ids) if chunk is None else chunked_token_logprobs(hidden, head, ids, chunk)
        logp.sum().backward()

    cases = {"full `[tokens × vocab]` fp32 logits (before)": functools.partial(step, None)}
    cases |= {
        f"chunks of {c} positions (now{', the default' if c == 1024 else ''})": functools.partial(step, c)
        for c in (1024, 256)
    }
    return measure(cases, repeats, peak_unit=("GB", 1e9))


def measure(cases: dict, repeats: int, peak_unit: tuple[str, float]) -> list[dict]:
    """Interleaved seconds, then each case's peak of live tensors in one more run; ratios to the first case."""
    timings = harness.interleave(cases, repeats)
    peaks = {name: harness.tensor_peak(fn) for name, fn in cases.items()}
    first = next(iter(cases))
    unit, scale = peak_unit
    return [
        {
            "path": name,
            "seconds (forward + backward)": t.median,
            f"peak live tensors ({unit})": peaks[name] / scale,
            "time / before": t.median / timings[first].median,
            "peak / before": peaks[name] / peaks[first],
        }
        for name, t in timings.items()
    ]


def main() -> None:
    ap = harness.arguments(__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=3072)
    args = ap.parse_args()
    torch.set_num_threads(1)
    vision, video_tokens = vision_once(args.repeats)
    chunks = chunked(args.tokens, args.repeats)
    md = [
        "# The RL update's log-prob path: before and after issue 23",
        "",
        f"## The vision tower once per group (gradient checkpointing, G = 8, a 16-frame video: {video_tokens} tokens)",
        "",
        *harness.table(vision),
        "",
        f"## Log-probs at Qwen's {QWEN_VOCAB:,}-token vocabulary, {args.tokens:,} positions (forward + backward)",
        "",
        *harness.table(chunks),
    ]
    print(
        harness.write(
            "logprobs", {"config": vars(args), "vision_once": vision, "chunked_logprobs": chunks}, md, args.out
        )
    )


if __name__ == "__main__":
    main()
