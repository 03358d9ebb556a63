"""Benchmark for a lent GPU: one T-GRPO update and one SFT step of the Qwen2.5-VL-7B architecture at paper shapes,
beside what ``videor1 plan`` predicts for them.

Random bf16 weights from the real config (no hub here), one process: 16 frames at 128·28·28 pixels (1,024 video
tokens) plus 256 text tokens of prompt, G = 8 completions of up to 768 tokens (uneven, as rollouts are), gradient
checkpointing on. RL: ``completion_logprobs`` of the policy (G whole sequences under checkpointing) and of the
frozen reference (the shared-prompt cache), ``policy_loss``, backward, AdamW. SFT: the prompt and one 768-token
answer, the loss on the answer, backward, AdamW. One process cannot hold fp32 master weights and AdamW state of
8.29B parameters (133 GB), so weights, gradients and moments are bf16 here; the plan is asked for the same.

Per stage: one warm-up step (AdamW allocates its moments), then ``--steps`` timed steps: seconds, peak memory
(CUDA: ``max_memory_allocated``; CPU: every live tensor, ``videor1.plan.PeakTensorMemory``), FLOPs executed
(``torch.utils.flop_counter``, recomputation included) and model FLOPs (3 × the policy's forward + the
reference's forward, counted the same way), TFLOP/s, and MFU against ``--peak-tflops`` (H200 bf16 dense: ~790
as the issue states it). Results: ``bench/results/gpu_step.{json,md}``.

    python bench/gpu_step.py                  # on the GPU (~3 minutes with model init)
    python bench/gpu_step.py --tiny --out /tmp/gpu_step   # the same code on this CPU at toy size (a smoke test)
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

import videor1  # noqa: F401  (the torchvision fix)
from videor1.models.rope import use_reference_positions
from videor1.plan import CONFIGS, ModelShape, PeakTensorMemory, RunShape, plan_memory
from videor1.rl.algorithm import policy_loss
from videor1.rl.policy import completion_logprobs, separate_logprobs, completion_batch

from _env import REPO, code_version, machine_info

TINY_TEXT = dict(hidden_size=128, intermediate_size=256, num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
                 rope_scaling={"type": "mrope", "mrope_section": [4, 6, 6]},
                 # a small vocabulary (the vision tokens moved into it): at 152k, bf16 on a CPU spends minutes on the head
                 vocab_size=4096, vision_start_token_id=4092, vision_end_token_id=4093, image_token_id=4094,
                 video_token_id=4095)
TINY_VISION = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=128,
                   fullatt_block_indexes=[1])


def build_model(config: Qwen2_5_VLConfig, device: torch.device) -> Qwen2_5_VLForConditionalGeneration:
    with torch.device(device):
        model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.bfloat16)
    use_reference_positions(model)
    return model


def video_prompt(config: Qwen2_5_VLConfig, frames: int, pixels: int, text_tokens: int, device, seed: int) -> dict:
    """One prompt as the processor makes it: text, <|vision_start|>, the video's tokens, <|vision_end|>, text."""
    g = torch.Generator().manual_seed(seed)
    per_frame = pixels // (14 * 14)
    h = 2 * int((per_frame // 4) ** 0.5)  # a grid of h × w patches, both even (the 2 × 2 merge)
    w = per_frame // h - per_frame // h % 2
    grid = torch.tensor([[frames // 2, h, w]])
    video_tokens = int(grid.prod()) // 4
    before, after = text_tokens // 2, text_tokens - text_tokens // 2
    vocab = config.text_config.vocab_size
    ids = torch.cat([text_ids(before, g, vocab), torch.tensor([config.vision_start_token_id]),
                     torch.full((video_tokens,), config.video_token_id), torch.tensor([config.vision_end_token_id]),
                     text_ids(after, g, vocab)]).unsqueeze(0)
    kinds = torch.zeros_like(ids)
    kinds[ids == config.video_token_id] = 2
    return {"input_ids": ids.to(device), "attention_mask": torch.ones_like(ids, device=device),
            "mm_token_type_ids": kinds.to(device),
            "pixel_values_videos": torch.randn(int(grid.prod()), 3 * 2 * 14 * 14, generator=g).to(device, torch.bfloat16),
            "video_grid_thw": grid.to(device), "second_per_grid_ts": torch.tensor([1.0], device=device)}


def text_ids(n: int, g: torch.Generator, vocab_size: int) -> torch.Tensor:
    """Ordinary text tokens: below 100k (Qwen's special and vision tokens sit above 151k), inside a small vocabulary."""
    return torch.randint(min(1000, vocab_size // 8), min(100_000, vocab_size - 128), (n,), generator=g)


def completions(n: int, length: int, seed: int, vocab_size: int) -> list[list[int]]:
    """The first at full length, the others between half and full, as sampled rollouts end unevenly."""
    g = torch.Generator().manual_seed(seed + 1)
    lengths = [length] + torch.randint(length // 2, length + 1, (n - 1,), generator=g).tolist()
    return [text_ids(k, g, vocab_size).tolist() for k in lengths]


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(step, forward_flops: int, device: torch.device, held, steps: int) -> dict:
    """Warm-up, timed steps with the peak, then one step under the FLOP counter."""
    step()
    synchronize(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        tracker = None
    else:
        tracker = PeakTensorMemory(held())
        tracker.__enter__()
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        synchronize(device)
        times.append(time.perf_counter() - start)
    if tracker is not None:
        tracker.__exit__(None, None, None)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else tracker.peak
    with FlopCounterMode(display=False) as counter:
        step()
    seconds = min(times)
    return {"seconds": seconds, "seconds_all": times, "peak_gib": peak / 2**30,
            "executed_tflop": counter.get_total_flops() / 1e12, "model_tflop": forward_flops / 1e12,
            "executed_tflops_per_s": counter.get_total_flops() / seconds / 1e12,
            "model_tflops_per_s": forward_flops / seconds / 1e12}


def forward_flops(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(CONFIGS / "qwen2_5_vl_7b.json"))
    ap.add_argument("--tiny", action="store_true", help="toy widths and shapes, on the CPU: a smoke test of this script")
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--pixels", type=int, default=128 * 28 * 28)
    ap.add_argument("--prompt-text", type=int, default=256)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--completion", type=int, default=768)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--peak-tflops", type=float, default=790.0)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "gpu_step"))
    args = ap.parse_args()

    raw = json.loads(Path(args.config).read_text())
    if args.tiny:
        raw.update(TINY_TEXT)
        raw["vision_config"].update(TINY_VISION)
        args.frames, args.pixels, args.prompt_text, args.generations, args.completion = 4, 4 * 56 * 56, 32, 4, 32
    config = Qwen2_5_VLConfig(**raw)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    torch.manual_seed(0)

    policy = build_model(config, device)
    reference = copy.deepcopy(policy).requires_grad_(False).eval()
    policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    policy.train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    prompt = video_prompt(config, args.frames, args.pixels, args.prompt_text, device, seed=0)
    rollouts = completions(args.generations, args.completion, seed=0, vocab_size=config.text_config.vocab_size)
    pad = config.text_config.pad_token_id or 0
    advantages = torch.linspace(-1.0, 1.0, args.generations, device=device)

    def rl_step():
        logp, mask = completion_logprobs(policy, prompt, rollouts, pad)
        with torch.no_grad():
            ref_logp, _ = completion_logprobs(reference, prompt, rollouts, pad)
        loss, _ = policy_loss(logp, ref_logp, advantages, mask, 0.04)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    answer = torch.tensor([rollouts[0]], device=device)
    sft_inputs = {**prompt, "input_ids": torch.cat([prompt["input_ids"], answer], dim=1),
                  "attention_mask": torch.ones(1, prompt["input_ids"].shape[1] + answer.shape[1], dtype=torch.long, device=device),
                  "mm_token_type_ids": torch.cat([prompt["mm_token_type_ids"], torch.zeros_like(answer)], dim=1)}
    sft_inputs["labels"] = torch.cat([torch.full_like(prompt["input_ids"], -100), answer], dim=1)

    def sft_step():
        policy(**sft_inputs, use_cache=False).loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    ids, mask = completion_batch(rollouts, pad, device)
    policy_forward = forward_flops(lambda: separate_logprobs(policy, prompt, ids, mask))
    reference_forward = forward_flops(lambda: completion_logprobs(reference, prompt, rollouts, pad))
    sft_forward = forward_flops(lambda: policy(**sft_inputs, use_cache=False))

    def held():
        state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        return [*policy.parameters(), *policy.buffers(), *reference.parameters(), *reference.buffers(), *state]

    results = {"rl": measure(rl_step, 3 * policy_forward + reference_forward, device, held, args.steps),
               "sft": measure(sft_step, 3 * sft_forward, device, held, args.steps)}

    shape = ModelShape.from_config(config)
    prompt_tokens, patches = prompt["input_ids"].shape[1], prompt["pixel_values_videos"].shape[0]
    runs = {"rl": RunShape("rl", prompt_tokens=prompt_tokens, completion_tokens=args.completion,
                           completions=args.generations, vision_patches=patches, sharding="none", master_bytes=2),
            "sft": RunShape("sft", prompt_tokens=prompt_tokens + args.completion, vision_patches=patches,
                            sharding="none", master_bytes=2)}
    gpu_gb = torch.cuda.get_device_properties(0).total_memory / 2**30 if device.type == "cuda" else 0.0
    for stage, run in runs.items():
        plan = plan_memory(shape, run, 1, gpu_gb, context_bytes=0)
        planned = plan.total_gb + (plan.terms["weights (bf16)"] if stage == "sft" else 0.0)  # SFT holds the reference too
        r = results[stage]
        r["plan_gib"] = planned
        r["plan_terms_gib"] = plan.terms
        r["plan_over_measured"] = planned / r["peak_gib"]
        r["mfu"] = r["model_tflops_per_s"] / args.peak_tflops
        r["hfu"] = r["executed_tflops_per_s"] / args.peak_tflops

    record = {"device": torch.cuda.get_device_name(0) if device.type == "cuda" else "cpu", "params": shape.params,
              "shapes": {"frames": args.frames, "pixels": args.pixels, "prompt_tokens": prompt_tokens,
                         "vision_patches": patches, "generations": args.generations, "completion": args.completion},
              "peak_tflops": args.peak_tflops, "results": results, "code": code_version(),
              "machine": machine_info(transformers=__import__("transformers").__version__)}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    lines = [f"# One RL and one SFT step, Qwen2.5-VL architecture ({shape.params / 1e9:.2f}B), {record['device']}", "",
             f"Prompt {prompt_tokens} tokens ({patches} vision patches), G = {args.generations}, completions up to "
             f"{args.completion} tokens; bf16 weights, gradients and AdamW; gradient checkpointing on.", "",
             "| stage | seconds | peak GiB | plan GiB | plan/measured | model TFLOP | TFLOP/s | MFU | HFU |",
             "|---|---|---|---|---|---|---|---|---|"]
    for stage, r in results.items():
        lines.append(f"| {stage} | {r['seconds']:.2f} | {r['peak_gib']:.2f} | {r['plan_gib']:.2f} | "
                     f"{r['plan_over_measured']:.2f} | {r['model_tflop']:.1f} | {r['model_tflops_per_s']:.1f} | "
                     f"{r['mfu']:.1%} | {r['hfu']:.1%} |")
    out.with_suffix(".md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
