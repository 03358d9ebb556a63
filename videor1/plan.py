"""A memory plan: per-GPU bytes of an SFT or RL run on N GPUs of M GB, from the model's config on the meta device.

Counts what a run holds, term by term, so a researcher sees why a setup fits or not before renting it:

- weights, gradients and AdamW state, sharded over the N GPUs (FSDP2 / ZeRO-3: ``sharding: full``), or the
  weights replicated in bf16 with gradients and optimizer sharded (ZeRO-2: ``sharding: zero2``). Master
  weights, gradients and optimizer moments are fp32 (spec section 8: bf16 weights do not learn at lr 1e-6);
- the frozen reference model (RL), bf16, sharded like the policy;
- the two layers' worth of unsharded bf16 weights FSDP gathers ahead (gather + prefetch);
- activations of the language model for the step's tokens (RL: the prompt once plus G completions, the
  shared-prompt forward of ``videor1.rl.policy``; SFT: the whole sequence) and of the vision tower for its
  patches: every layer's saved tensors, or with gradient checkpointing each layer's input plus one layer
  recomputed;
- the completion logits: bf16 out, the fp32 copy the log-probs take, and its gradient;
- vLLM's share of the GPU when a colocated engine does the rollouts (``gpu_memory_utilization``);
- a fixed allowance for the CUDA context and allocator fragmentation.

Activation bytes per token and layer are counted from the layer's tensors (bf16): the attention block keeps
its input norm, q, k, v, the attention output and o_proj's input; the SwiGLU MLP its norm, gate, up,
act(gate) and their product; two residuals. Flash attention keeps no seq × seq matrix.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

GIB = 1 << 30
CONFIGS = Path(__file__).parent / "configs"
CONTEXT_BYTES = 2 * GIB  # CUDA context, NCCL buffers, allocator fragmentation


@dataclass(frozen=True)
class ModelShape:
    params: int
    vision_params: int
    largest_layer_params: int
    hidden: int
    intermediate: int
    kv_dim: int
    layers: int
    vocab: int
    vision_hidden: int
    vision_intermediate: int
    vision_layers: int

    @classmethod
    def from_config(cls, config) -> ModelShape:
        """Parameter counts from the real transformers model built on the meta device (no memory, no weights)."""
        from transformers import Qwen2_5_VLForConditionalGeneration

        with torch.device("meta"):
            model = Qwen2_5_VLForConditionalGeneration(config)
        text, vision = config.text_config, config.vision_config
        layers = list(model.model.language_model.layers) + list(model.model.visual.blocks)
        return cls(
            params=sum(p.numel() for p in model.parameters()),
            vision_params=sum(p.numel() for p in model.model.visual.parameters()),
            largest_layer_params=max(sum(p.numel() for p in layer.parameters()) for layer in layers),
            hidden=text.hidden_size, intermediate=text.intermediate_size,
            kv_dim=text.num_key_value_heads * (text.hidden_size // text.num_attention_heads),
            layers=text.num_hidden_layers, vocab=text.vocab_size,
            vision_hidden=vision.hidden_size, vision_intermediate=vision.intermediate_size, vision_layers=vision.depth,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ModelShape:
        from transformers import Qwen2_5_VLConfig

        return cls.from_config(Qwen2_5_VLConfig(**json.loads(Path(path).read_text())))


@dataclass(frozen=True)
class RunShape:
    """What one GPU computes in one micro-step."""

    stage: str  # sft | rl
    prompt_tokens: int  # text + vision tokens of the prompt (SFT: the whole sequence)
    completion_tokens: int = 0  # per completion (RL)
    completions: int = 0  # G (RL)
    vision_patches: int = 0  # 14×14 patches before the 2×2 merge
    gradient_checkpointing: bool = True
    sharding: str = "full"  # full | zero2 | none
    vllm_share: float = 0.0  # colocated vLLM's gpu_memory_utilization (RL)


def _activation_bytes_per_token_layer(hidden: int, intermediate: int, kv_dim: int) -> int:
    attention = 4 * hidden + 2 * kv_dim  # norm, q, attention out, o_proj input; k and v
    mlp = hidden + 4 * intermediate  # norm, gate, up, act(gate), product
    return 2 * (attention + mlp + 2 * hidden)  # bf16, plus two residual streams


@dataclass
class MemoryPlan:
    gpus: int
    gpu_gb: float  # GiB, as the driver reports it (an "80 GB" A100: 80 GiB)
    terms: dict[str, float] = field(default_factory=dict)  # GiB per GPU

    @property
    def total_gb(self) -> float:
        return sum(self.terms.values())

    @property
    def fits(self) -> bool:
        return self.total_gb <= 0.98 * self.gpu_gb  # 2 % headroom


def plan_memory(model: ModelShape, run: RunShape, gpus: int, gpu_gb: float) -> MemoryPlan:
    """Per-GPU GiB of each term (see the module's docstring) and whether their sum fits in ``gpu_gb``."""
    p, shards = model.params, {"full": gpus, "zero2": gpus, "none": 1}[run.sharding]
    t: dict[str, float] = {}
    if run.sharding == "zero2":
        t["weights (bf16, replicated)"] = 2 * p
        t["master weights (fp32, sharded)"] = 4 * p / shards
    else:
        t["weights (fp32 master, sharded)" if run.sharding == "full" else "weights (fp32)"] = 4 * p / shards
    t["gradients (fp32)"] = 4 * p / shards
    t["AdamW moments (fp32)"] = 8 * p / shards
    if run.stage == "rl":
        t["reference model (bf16)"] = 2 * p / shards
    if run.sharding == "full" and gpus > 1:
        t["gathered layers (bf16, 2 in flight)"] = 2 * 2 * model.largest_layer_params

    lm_tokens = run.prompt_tokens + run.completions * run.completion_tokens
    per_token_layer = _activation_bytes_per_token_layer(model.hidden, model.intermediate, model.kv_dim)
    if run.gradient_checkpointing:
        lm = lm_tokens * (2 * model.hidden * model.layers + per_token_layer)  # each layer's input + one layer live
    else:
        lm = lm_tokens * per_token_layer * model.layers
    t["activations, language model"] = lm
    if run.vision_patches:
        per_patch_layer = _activation_bytes_per_token_layer(model.vision_hidden, model.vision_intermediate, model.vision_hidden)
        layers = 1 if run.gradient_checkpointing else model.vision_layers
        t["activations, vision tower"] = run.vision_patches * (per_patch_layer * layers
                                                               + (2 * model.vision_hidden * model.vision_layers
                                                                  if run.gradient_checkpointing else 0))
    logit_rows = run.completions * run.completion_tokens if run.stage == "rl" else run.prompt_tokens
    t["logits (bf16 + fp32 copy + grad)"] = logit_rows * model.vocab * (2 + 4 + 4)
    if run.vllm_share:
        t["vLLM (gpu_memory_utilization)"] = run.vllm_share * gpu_gb * GIB
    t["CUDA context, fragmentation"] = CONTEXT_BYTES
    return MemoryPlan(gpus, gpu_gb, {k: v / GIB for k, v in t.items()})


def video_tokens(frames: int, pixels: int, merge: int = 2, patch: int = 14, temporal: int = 2) -> tuple[int, int]:
    """(patches, LLM tokens) of a video of ``frames`` frames at ``pixels`` pixels each."""
    patches = pixels // (patch * patch) * (frames // temporal)  # a patch spans 2 frames × 14 × 14
    return patches, patches // (merge * merge)


def describe(plan: MemoryPlan) -> dict:
    return {**asdict(plan), "total_gb": round(plan.total_gb, 1), "fits": plan.fits}


PROMPT_TEXT_TOKENS = 256  # the chat template, question, options and instruction around the video (measured: ~200)


def profile_runs(params: dict, profile: str, *, sharding: str = "full", gradient_checkpointing: bool = True) -> dict[str, RunShape]:
    """The SFT and RL micro-steps of a ``params.yaml`` profile: its frames, pixels, sequence lengths, G, vLLM share."""
    sft, rl = params[profile]["sft"], params[profile]["rl"]
    sft_patches, _ = video_tokens(sft["media"]["max_frames"], sft["media"]["video_max_pixels"])
    rl_patches, rl_tokens = video_tokens(rl["media"]["max_frames"], rl["media"]["video_max_pixels"])
    train = rl["train"]
    return {
        "sft": RunShape("sft", prompt_tokens=sft["max_length"], vision_patches=sft_patches,
                        gradient_checkpointing=gradient_checkpointing, sharding=sharding),
        "rl": RunShape("rl", prompt_tokens=rl_tokens + PROMPT_TEXT_TOKENS, completion_tokens=train["max_completion_length"],
                       completions=train["num_generations"], vision_patches=rl_patches,
                       gradient_checkpointing=gradient_checkpointing, sharding=sharding,
                       vllm_share=rl.get("gpu_memory_utilization", 0.0) if rl.get("rollout_backend") == "vllm" else 0.0),
    }
