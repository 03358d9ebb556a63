"""Benchmark for a lent GPU: one T-GRPO update and one SFT step of the Qwen2.5-VL-7B architecture (or, with
``--config videor1/configs/qwen3_vl_8b.json``, Qwen3-VL-8B's) at paper shapes, beside what ``videor1 plan`` predicts.

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
as the issue states it). Results: ``--out`` + ``.json`` / ``.md``: by default ``$OUT/gpu_step`` where ``$OUT``
is set (the device machine's folder that comes back), else ``bench/results/gpu_step``.

Made to run on the lent GPU's image as it is (``bench/device/run.sh``; bench/README.md): it imports only torch,
transformers, tokenizers and numpy besides ``bench.harness`` and the leaf modules of videor1 it needs (no git, no
network; no av, jiwer, nltk, rouge-score or vllm), writes the plan before it builds anything and the record again after every stage, so a stage that fails (out of memory, say) leaves the other's
figures and its own error in the outputs (and the exit status is 1).

    bash bench/device/run.sh                   # on the GPU (~3 minutes with model init); outputs in $OUT
    python -m bench.gpu_step --tiny --out /tmp/gpu_step   # the same code on this CPU at toy size (a smoke test)
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import os
import sys
import time
import traceback
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode
from transformers import AutoConfig, PretrainedConfig, PreTrainedModel

import videor1  # noqa: F401  (the torchvision fix; harmless where torchvision is absent)
from bench import harness
from videor1.models.families import family_of
from videor1.models.loading import ATTENTION, check_attention
from videor1.plan import CONFIGS, ModelShape, PeakTensorMemory, RunShape, plan_memory
from videor1.rl.algorithm import policy_loss
from videor1.rl.policy import completion_batch, completion_logprobs, separate_logprobs

TINY_TEXT = dict(
    hidden_size=128,
    intermediate_size=256,
    num_hidden_layers=2,
    num_attention_heads=4,
    num_key_value_heads=2,
    # a small vocabulary (the vision tokens moved into it): at 152k, bf16 on a CPU spends minutes on the head
    vocab_size=4096,
    bos_token_id=4090,
    eos_token_id=4091,
)
TINY_IDS = dict(vision_start_token_id=4092, vision_end_token_id=4093, image_token_id=4094, video_token_id=4095)
TINY_VISION = dict(depth=2, hidden_size=64, intermediate_size=128, num_heads=2, out_hidden_size=128)
TINY_FAMILY = {  # what a family's tiny text and vision configs add (the flat Qwen2.5-VL config, nested Qwen3-VL)
    "qwen2_5_vl": ({"rope_scaling": {"type": "mrope", "mrope_section": [4, 6, 6]}}, {"fullatt_block_indexes": [1]}),
    "qwen3_vl": (
        {
            "head_dim": 32,
            "rope_parameters": {
                "rope_type": "default",
                "rope_theta": 5000000,
                "mrope_section": [4, 6, 6],
                "mrope_interleaved": True,
            },
        },
        {"deepstack_visual_indexes": [0], "num_position_embeddings": 256},
    ),
}


def tiny_config(raw: dict) -> dict:
    """The config at toy widths, its family's structure kept."""
    text, vision = TINY_FAMILY[raw["model_type"]]
    target = raw["text_config"] if "text_config" in raw else raw
    target.update(TINY_TEXT, **text)
    raw.update(TINY_IDS)
    raw["vision_config"].update(TINY_VISION, **vision)
    return raw


def build_model(config: PretrainedConfig, device: torch.device, attn: str = "sdpa") -> PreTrainedModel:
    family = family_of(config)
    with torch.device(device):
        model = family.model_class()._from_config(
            config, dtype=torch.bfloat16, attn_implementation=check_attention(attn)
        )
    return family.prepare(model)


def video_prompt(config: PretrainedConfig, frames: int, pixels: int, text_tokens: int, device, seed: int) -> dict:
    """One prompt as the processor makes it: text, <|vision_start|>, the video's tokens, <|vision_end|>, text. Qwen3-VL
    (time in the text): every temporal patch its own block, a 5-token ``<t seconds>`` before it."""
    g = torch.Generator().manual_seed(seed)
    patch = config.vision_config.patch_size
    timestamps = family_of(config).name != "qwen2_5_vl"
    per_frame = pixels // (patch * patch)
    # a grid of h × w patches, both even (the 2 × 2 merge), as square as the pixels allow: 128·28·28 is 16 × 32
    exact = [h for h in range(2, int(per_frame**0.5) + 1, 2) if per_frame % h == 0 and per_frame // h % 2 == 0]
    h = exact[-1] if exact else 2 * int((per_frame // 4) ** 0.5)
    w = per_frame // h - per_frame // h % 2
    grid = torch.tensor([[frames // 2, h, w]])
    video_tokens = int(grid.prod()) // 4
    before, after = text_tokens // 2, text_tokens - text_tokens // 2
    vocab = config.text_config.vocab_size
    start, end = torch.tensor([config.vision_start_token_id]), torch.tensor([config.vision_end_token_id])
    if timestamps:  # <t seconds><|vision_start|> one temporal patch's tokens <|vision_end|>, per temporal patch
        per_patch = video_tokens // (frames // 2)
        blocks = [
            torch.cat([text_ids(5, g, vocab), start, torch.full((per_patch,), config.video_token_id), end])
            for _ in range(frames // 2)
        ]
        video = torch.cat([start, *blocks, end])
    else:
        video = torch.cat([start, torch.full((video_tokens,), config.video_token_id), end])
    ids = torch.cat([text_ids(before, g, vocab), video, text_ids(after, g, vocab)]).unsqueeze(0)
    kinds = torch.zeros_like(ids)
    kinds[ids == config.video_token_id] = 2
    pixels_per_patch = 3 * 2 * patch * patch
    prompt = {
        "input_ids": ids.to(device),
        "attention_mask": torch.ones_like(ids, device=device),
        "mm_token_type_ids": kinds.to(device),
        "pixel_values_videos": torch.randn(int(grid.prod()), pixels_per_patch, generator=g).to(device, torch.bfloat16),
        "video_grid_thw": grid.to(device),
    }
    if not timestamps:  # Qwen2.5-VL's time: seconds per temporal patch, in the positions
        prompt["second_per_grid_ts"] = torch.tensor([1.0], device=device)
    return prompt


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
    start = time.perf_counter()
    step()
    synchronize(device)
    warmup = time.perf_counter() - start
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        tracker = None
    else:
        tracker = PeakTensorMemory(held())
        tracker.__enter__()
    times = []
    try:
        for _ in range(steps):
            start = time.perf_counter()
            step()
            synchronize(device)
            times.append(time.perf_counter() - start)
    finally:  # a failed step must not leave the dispatch mode on
        if tracker is not None:
            tracker.__exit__(None, None, None)
    peak = torch.cuda.max_memory_allocated() if device.type == "cuda" else tracker.peak
    with FlopCounterMode(display=False) as counter:
        step()
    seconds = min(times)
    reserved = torch.cuda.max_memory_reserved() / 2**30 if device.type == "cuda" else None
    return {
        "seconds": seconds,
        "seconds_all": times,
        "warmup_seconds": warmup,
        "peak_gib": peak / 2**30,
        "peak_reserved_gib": reserved,
        "executed_tflop": counter.get_total_flops() / 1e12,
        "model_tflop": forward_flops / 1e12,
        "executed_tflops_per_s": counter.get_total_flops() / seconds / 1e12,
        "model_tflops_per_s": forward_flops / seconds / 1e12,
    }


def forward_flops(fn) -> int:
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def machine_info(device: torch.device) -> dict:
    import numpy
    import transformers

    info = harness.machine_info(transformers=transformers.__version__, numpy=numpy.__version__, cuda=torch.version.cuda)
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(
            gpu=props.name,
            gpu_memory_gib=props.total_memory / 2**30,
            capability=f"{props.major}.{props.minor}",
            cudnn=torch.backends.cudnn.version(),
        )
    return info


def write_outputs(out: Path, record: dict) -> None:
    """The JSON record and the Markdown summary (``bench.harness.write``), written again after every stage."""
    harness.write(out.name, record, markdown(record).splitlines(), out=out.parent)


def markdown(record: dict) -> str:
    s, m = record["shapes"], record["machine"]
    lines = [
        f"# One RL and one SFT step, Qwen2.5-VL architecture ({record['params'] / 1e9:.2f}B), {record['device']}",
        "",
        f"Prompt {s['prompt_tokens']} tokens ({s['vision_patches']} vision patches: {s['frames']} frames at "
        f"{s['pixels']} pixels), G = {s['generations']}, completions up to {s['completion']} tokens; bf16 weights, "
        f"gradients and AdamW; gradient checkpointing on; attention `{record['attn_implementation']}`; "
        f"{record['steps']} timed steps after a warm-up (seconds: the fastest); MFU against "
        f"{record['peak_tflops']:g} TFLOP/s.",
        "",
        f"transformers {m['transformers']}, CUDA {m['cuda']}" + (f", {m['gpu']}" if "gpu" in m else "") + ".",
        "",
        "| stage | status | seconds | peak GiB | plan GiB | plan/measured | model TFLOP | TFLOP/s | MFU | HFU |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for stage, r in record["results"].items():
        if r["status"] == "ok":
            lines.append(
                f"| {stage} | ok | {r['seconds']:.2f} | {r['peak_gib']:.2f} | {r['plan_gib']:.2f} | "
                f"{r['plan_over_measured']:.2f} | {r['model_tflop']:.4g} | {r['model_tflops_per_s']:.4g} | "
                f"{r['mfu']:.1%} | {r['hfu']:.1%} |"
            )
        else:
            lines.append(f"| {stage} | {r['status']} | | | {r['plan_gib']:.2f} | | | | | |")
    for stage, r in record["results"].items():
        if r.get("error"):
            lines += ["", f"{stage} failed: `{r['error'][:500]}`"]
    for stage, r in record["results"].items():
        lines += ["", f"Plan, {stage} (GiB): " + ", ".join(f"{k} {v:.2f}" for k, v in r["plan_terms_gib"].items())]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", default=str(CONFIGS / "qwen2_5_vl_7b.json"))
    ap.add_argument(
        "--tiny", action="store_true", help="toy widths and shapes, on the CPU: a smoke test of this script"
    )
    ap.add_argument("--frames", type=int, default=16)
    ap.add_argument("--pixels", type=int, default=None, help="per frame (default: 128 merged tokens of the family)")
    ap.add_argument("--prompt-text", type=int, default=256)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--completion", type=int, default=768)
    ap.add_argument("--steps", type=int, default=2)
    ap.add_argument("--stages", default="rl,sft", help="comma-separated, run in this order: rl, sft")
    ap.add_argument(
        "--attn",
        default="sdpa",
        choices=ATTENTION,
        help="the model's attn_implementation (videor1.models.loading.check_attention)",
    )
    ap.add_argument("--peak-tflops", type=float, default=790.0)
    default_out = Path(os.environ["OUT"]) / "gpu_step" if os.environ.get("OUT") else harness.RESULTS / "gpu_step"
    ap.add_argument(
        "--out",
        default=str(default_out),
        help="path stem of the .json and .md (default: $OUT/gpu_step where $OUT is set, else bench/results/gpu_step)",
    )
    ap.add_argument("--code-version", action="store_true", help="print the code digest and commit, and exit")
    ap.add_argument("--plan-only", action="store_true", help="write the plan (the record before any step) and exit")
    args = ap.parse_args(argv)
    if args.code_version:
        print(json.dumps(harness.code_version()))
        return 0
    stages = [s for s in args.stages.split(",") if s]
    if not stages or not set(stages) <= {"rl", "sft"}:
        ap.error(f"--stages takes rl and/or sft, got {args.stages!r}")

    raw = json.loads(Path(args.config).read_text())
    side = raw["vision_config"]["patch_size"] * raw["vision_config"]["spatial_merge_size"]
    args.pixels = args.pixels or 128 * side * side  # the paper's 128 tokens per temporal patch
    if args.tiny:
        raw = tiny_config(raw)
        args.frames, args.pixels, args.prompt_text, args.generations, args.completion = 4, 16 * side * side, 32, 4, 32
    config = AutoConfig.for_model(raw.pop("model_type"), **raw)
    device = torch.device("cuda" if torch.cuda.is_available() and not args.tiny else "cpu")
    out = Path(args.out)
    torch.manual_seed(0)

    # The plan first, from the shapes alone (the model on the meta device), written before anything is built
    shape = ModelShape.from_config(config)
    prompt = video_prompt(config, args.frames, args.pixels, args.prompt_text, device, seed=0)
    prompt_tokens, patches = prompt["input_ids"].shape[1], prompt["pixel_values_videos"].shape[0]
    runs = {
        "rl": RunShape(
            "rl",
            prompt_tokens=prompt_tokens,
            completion_tokens=args.completion,
            completions=args.generations,
            vision_patches=patches,
            sharding="none",
            master_bytes=2,
        ),
        "sft": RunShape(
            "sft",
            prompt_tokens=prompt_tokens + args.completion,
            vision_patches=patches,
            sharding="none",
            master_bytes=2,
        ),
    }
    gpu_gb = torch.cuda.get_device_properties(device).total_memory / 2**30 if device.type == "cuda" else 0.0
    results = {}
    for stage in stages:
        plan = plan_memory(shape, runs[stage], 1, gpu_gb, context_bytes=0)
        terms = dict(plan.terms)
        if stage == "sft":  # an SFT run holds no reference; this process keeps the RL stage's during SFT too
            terms["reference model (bf16), held beside"] = plan.terms["weights (bf16)"]
        planned = plan.total_gb + (plan.terms["weights (bf16)"] if stage == "sft" else 0.0)
        results[stage] = {"status": "pending", "plan_gib": planned, "plan_terms_gib": terms}
    record = {
        "device": torch.cuda.get_device_name(device) if device.type == "cuda" else "cpu",
        "params": shape.params,
        "shapes": {
            "frames": args.frames,
            "pixels": args.pixels,
            "prompt_tokens": prompt_tokens,
            "vision_patches": patches,
            "generations": args.generations,
            "completion": args.completion,
        },
        "steps": args.steps,
        "attn_implementation": args.attn,
        "peak_tflops": args.peak_tflops,
        "tiny": args.tiny,
        "results": results,
        "code": harness.code_version(),
        "machine": machine_info(device),
        "argv": sys.argv[1:],
    }
    write_outputs(out, record)
    print(
        f"plan written to {out.with_suffix('.json')}: "
        + ", ".join(f"{k} {r['plan_gib']:.1f} GiB" for k, r in results.items()),
        flush=True,
    )
    if args.plan_only:
        return 0

    started = time.perf_counter()
    try:
        policy = build_model(config, device, args.attn)
        reference = copy.deepcopy(policy).requires_grad_(False).eval()
    except Exception as e:  # an attention implementation the image lacks, say: the record says so
        for r in results.values():
            r.update(
                status="failed",
                error=f"building the model: {type(e).__name__}: {str(e)[:2000]}",
                traceback=traceback.format_exc()[-8000:],
            )
        write_outputs(out, record)
        print(markdown(record), flush=True)
        return 1
    policy.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    policy.train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=1e-6)
    synchronize(device)
    record["build_seconds"] = time.perf_counter() - started
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
    sft_inputs = {
        **prompt,
        "input_ids": torch.cat([prompt["input_ids"], answer], dim=1),
        "attention_mask": torch.ones(
            1, prompt["input_ids"].shape[1] + answer.shape[1], dtype=torch.long, device=device
        ),
        "mm_token_type_ids": torch.cat([prompt["mm_token_type_ids"], torch.zeros_like(answer)], dim=1),
    }
    sft_inputs["labels"] = torch.cat([torch.full_like(prompt["input_ids"], -100), answer], dim=1)

    def sft_step():
        policy(**sft_inputs, use_cache=False).loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    def rl_model_flops() -> int:  # 3 × the policy's forward (forward + backward) + the reference's forward
        ids, mask = completion_batch(rollouts, pad, device)
        return 3 * forward_flops(lambda: separate_logprobs(policy, prompt, ids, mask)) + forward_flops(
            lambda: completion_logprobs(reference, prompt, rollouts, pad)
        )

    def sft_model_flops() -> int:
        return 3 * forward_flops(lambda: policy(**sft_inputs, use_cache=False))

    def held():
        state = [t for s in optimizer.state.values() for t in s.values() if isinstance(t, torch.Tensor)]
        return [*policy.parameters(), *policy.buffers(), *reference.parameters(), *reference.buffers(), *state]

    steps = {"rl": (rl_step, rl_model_flops), "sft": (sft_step, sft_model_flops)}
    failed = False
    for stage in stages:
        step, model_flops = steps[stage]
        r = results[stage]
        r["status"] = "running"
        write_outputs(out, record)
        print(f"{stage}: running", flush=True)
        try:
            r.update(measure(step, model_flops(), device, held, args.steps))
            r.update(
                status="ok",
                plan_over_measured=r["plan_gib"] / r["peak_gib"],
                mfu=r["model_tflops_per_s"] / args.peak_tflops,
                hfu=r["executed_tflops_per_s"] / args.peak_tflops,
            )
        except Exception as e:  # out of memory above all: record it, free what the step held, go on to the next
            failed = True
            r.update(
                status="failed", error=f"{type(e).__name__}: {str(e)[:2000]}", traceback=traceback.format_exc()[-8000:]
            )
            if device.type == "cuda":
                r["peak_gib_at_failure"] = torch.cuda.max_memory_allocated(device) / 2**30
            print(f"{stage}: FAILED {r['error'][:500]}", flush=True)
            del e
            optimizer.zero_grad(set_to_none=True)
            gc.collect()
            if device.type == "cuda":
                torch.cuda.empty_cache()
        write_outputs(out, record)
    print(markdown(record), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
