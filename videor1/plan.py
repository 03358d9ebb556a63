"""A memory plan: per-GPU bytes of an SFT or RL run on N GPUs of M GB, from the model's config on the meta device.

Counts what a run holds, term by term, so a researcher sees why a setup fits or not before renting it:

- weights, gradients and AdamW state, sharded over the N GPUs (FSDP2 / ZeRO-3: ``sharding: full``), or the
  weights replicated in bf16 with gradients and optimizer sharded (ZeRO-2: ``sharding: zero2``). Master
  weights, gradients and optimizer moments are fp32 (spec section 8: bf16 weights do not learn at lr 1e-6);
- the frozen reference model (RL), bf16, sharded like the policy;
- the two layers' worth of unsharded bf16 weights FSDP gathers ahead (gather + prefetch);
- activations of the language model for the step's tokens and of the vision tower for its patches: every
  layer's saved tensors, or with gradient checkpointing each layer's input plus one layer recomputed. RL
  without checkpointing runs ``videor1.rl.policy``'s shared-prompt forward: the prompt once (its key/value
  cache repeated for the G rows) plus G completions; with checkpointing (no cache in training) G whole
  sequences, the vision tower G times. SFT: the whole sequence;
- the completion logits: out in the compute dtype, the fp32 copy the log-probs take (none when computing in
  fp32), the softmax logsumexp's backward makes, and the gradient;
- vLLM's share of the GPU when a colocated engine does the rollouts (``gpu_memory_utilization``);
- a fixed allowance for the CUDA context and allocator fragmentation.

Activation bytes per token and layer are counted from the layer's tensors (in the compute dtype): the attention block keeps
its input norm, q, k, v, the attention output and o_proj's input; the SwiGLU MLP its norm, gate, up,
act(gate) and their product; two residuals. Flash attention keeps no seq × seq matrix.
"""

from __future__ import annotations

import json
import weakref
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

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
    compute_bytes: int = 2  # activations and reference weights: 2 under bf16 autocast, 4 in fp32
    master_bytes: int = 4  # weights, gradients, AdamW moments: 4 (fp32, what learns); 2 only for a 1-GPU benchmark


def _query_elements(hidden: int, intermediate: int) -> int:
    """Saved elements per query token and layer: attention's input norm, q, its output and o_proj's input; the
    SwiGLU MLP's norm, gate, up, act(gate) and their product; two residual streams."""
    return 4 * hidden + (hidden + 4 * intermediate) + 2 * hidden


def _key_elements(hidden: int, kv_dim: int, repeated: bool) -> int:
    """Saved elements per key token and layer: k and v, and their copies repeated to every head when a padding
    mask keeps SDPA from grouped-query attention (transformers' ``repeat_kv``)."""
    return 2 * kv_dim + (2 * hidden if repeated and kv_dim < hidden else 0)


def _language_model_activations(model: ModelShape, run: RunShape) -> int:
    """Bytes the language model keeps for the backward. RL without checkpointing: the prompt's forward (one row, no
    mask) and the G completions' forward over the repeated prompt cache, under a padding mask that SDPA holds as
    a float tensor per layer. RL with checkpointing: G whole masked sequences. SFT: one unmasked sequence."""
    a, h, layers = run.compute_bytes, model.hidden, model.layers
    query = _query_elements(h, model.intermediate)
    g, p, c = max(run.completions, 1), run.prompt_tokens, run.completion_tokens
    if run.stage == "sft":
        per_layer = p * (query + _key_elements(h, model.kv_dim, False))
        inputs = p
    elif not run.gradient_checkpointing:
        per_layer = (p * (query + _key_elements(h, model.kv_dim, False))  # the prompt, once
                     + g * c * query + g * (p + c) * _key_elements(h, model.kv_dim, True) + g * c * (p + c))
        inputs = p + g * c
    else:
        per_layer = g * (p + c) * (query + _key_elements(h, model.kv_dim, True)) + g * (p + c) ** 2
        inputs = g * (p + c)
    if run.gradient_checkpointing:  # every layer's input, and one layer recomputed in the backward
        saved = a * (inputs * h * layers + per_layer)
    else:
        saved = a * per_layer * layers
    return saved


def _reference_forward(model: ModelShape, run: RunShape) -> int:
    """Bytes the reference model's no-grad forward holds while the policy's graph waits for its backward: the
    widest moment of one layer (the residual, the MLP's gate and up), its float mask, and, on the shared-prompt
    path, the key/value cache of the G rows in every layer."""
    g, p, c = max(run.completions, 1), run.prompt_tokens, run.completion_tokens
    queries = g * (p + c) if run.gradient_checkpointing else g * c
    one_layer = queries * (2 * model.hidden + 2 * model.intermediate) + queries * (p + c)
    cache = 0 if run.gradient_checkpointing else g * (p + c) * 2 * model.kv_dim * model.layers
    return run.compute_bytes * (one_layer + cache)


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


def plan_memory(model: ModelShape, run: RunShape, gpus: int, gpu_gb: float, *,
                context_bytes: int = CONTEXT_BYTES) -> MemoryPlan:
    """Per-GPU GiB of each term (see the module's docstring) and whether their sum fits in ``gpu_gb``.
    ``context_bytes``: the fixed allowance (0 when planning a CPU run, where no CUDA context exists)."""
    p, shards = model.params, {"full": gpus, "zero2": gpus, "none": 1}[run.sharding]
    dtype = {2: "bf16", 4: "fp32"}[run.compute_bytes]
    m, master = run.master_bytes, {2: "bf16", 4: "fp32"}[run.master_bytes]
    t: dict[str, float] = {}
    if run.sharding == "zero2":
        t["weights (bf16, replicated)"] = 2 * p
        t[f"master weights ({master}, sharded)"] = m * p / shards
    else:
        t[f"weights ({master} master, sharded)" if run.sharding == "full" else f"weights ({master})"] = m * p / shards
    t[f"gradients ({master})"] = m * p / shards
    t[f"AdamW moments ({master})"] = 2 * m * p / shards
    if run.stage == "rl":
        t[f"reference model ({dtype})"] = run.compute_bytes * p / shards
    if run.sharding == "full" and gpus > 1:
        t["gathered layers (bf16, 2 in flight)"] = 2 * 2 * model.largest_layer_params

    a = run.compute_bytes
    # RL with checkpointing runs G whole sequences (``separate_logprobs``), the vision tower once per sequence
    patches = run.vision_patches * (max(run.completions, 1) if run.stage == "rl" and run.gradient_checkpointing else 1)
    t["activations, language model"] = _language_model_activations(model, run)
    if run.stage == "rl":
        t["reference forward (transient)"] = _reference_forward(model, run)
    if patches:
        per_patch_layer = a * (_query_elements(model.vision_hidden, model.vision_intermediate)
                               + _key_elements(model.vision_hidden, model.vision_hidden, False))
        if run.gradient_checkpointing:
            vision = patches * (per_patch_layer + a * model.vision_hidden * model.vision_layers)
        else:
            vision = patches * per_patch_layer * model.vision_layers
        t["activations, vision tower"] = vision
    logit_rows = run.completions * run.completion_tokens if run.stage == "rl" else run.prompt_tokens
    fp32_copy = 4 if a < 4 else 0
    t[f"logits ({dtype} + fp32 copy + softmax + grad)" if fp32_copy else "logits (fp32 + softmax + grad)"] = \
        logit_rows * model.vocab * (a + fp32_copy + 4 + 4)
    if run.vllm_share:
        t["vLLM (gpu_memory_utilization)"] = run.vllm_share * gpu_gb * GIB
    if context_bytes:
        t["CUDA context, fragmentation"] = context_bytes
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
                        gradient_checkpointing=gradient_checkpointing, sharding=sharding,
                        compute_bytes=2 if sft["train"].get("bf16") else 4),
        "rl": RunShape("rl", prompt_tokens=rl_tokens + PROMPT_TEXT_TOKENS, completion_tokens=train["max_completion_length"],
                       completions=train["num_generations"], vision_patches=rl_patches,
                       gradient_checkpointing=gradient_checkpointing, sharding=sharding,
                       vllm_share=rl.get("gpu_memory_utilization", 0.0) if rl.get("rollout_backend") == "vllm" else 0.0,
                       compute_bytes=2 if train.get("compute_dtype", "bfloat16") == "bfloat16" else 4),
    }


class PeakTensorMemory(TorchDispatchMode):
    """The peak bytes of live tensor storage while the mode is on, to check a plan against a real step on any
    device (CPU included, where no allocator statistics exist). Every op's outputs are counted until their
    storage is freed; ``held``: tensors alive before (weights), counted from the start.
    PyTorch's own ``MemTracker`` refuses a module that runs twice in a step, as the shared-prompt forward does."""

    def __init__(self, held=()):
        super().__init__()
        self._live: dict[int, int] = {}
        self.current = self.peak = 0
        for tensor in held:
            self._count(tensor)

    def _count(self, tensor: torch.Tensor) -> None:
        storage = tensor.untyped_storage()  # one Python object per storage while it lives
        key = id(storage)
        if key in self._live or tensor.device.type == "meta":
            return
        self._live[key] = storage.nbytes()
        self.current += storage.nbytes()
        self.peak = max(self.peak, self.current)
        weakref.finalize(storage, self._free, key)

    def _free(self, key: int) -> None:
        self.current -= self._live.pop(key, 0)

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for leaf in tree_leaves(out):
            if isinstance(leaf, torch.Tensor):
                self._count(leaf)
        return out
