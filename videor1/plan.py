"""A memory plan: per-GPU bytes of an SFT or RL run on N GPUs of M GB, from the model's config on the meta device.

Counts what a run holds, term by term and phase by phase, so a researcher sees why a setup fits or not before
renting it. An RL run on a node peaks in one of four phases (``fits`` is about the largest):

- **start-up**: the policy is built on the meta device on every rank and FSDP2-sharded, then rank 0 reads the
  checkpoint into host RAM and the full tensors are broadcast one at a time (``set_model_state_dict`` with
  ``full_state_dict=True, broadcast_from_rank0=True``; torch's ``_broadcast_state_dict`` sends one key per
  broadcast), each rank copying its slice into its fp32 shard; the reference is built the same way in the compute
  dtype. A GPU holds its two shards and the one full tensor in flight (at most the largest: the embedding or the
  LM head, 152,064 × 3,584); host RAM: one full copy in the checkpoint's dtype on rank 0, none elsewhere. The
  vLLM engine starts after the loads (its start needs ``gpu_memory_utilization`` × GPU free, which the rollout
  phase covers);
- **rollout**: the engine samples; the trainer holds its fp32 shards, the previous step's gradients (freed by
  ``zero_grad(set_to_none=True)`` only at the next update), AdamW's moments and the reference;
- **train step**: the forwards and the backward (the terms below); with ``vllm_sleep`` the engine sleeps at
  level 1 (weights offloaded to CPU RAM, KV cache discarded) and holds nothing on the GPU (the plan counts live
  tensors: what PyTorch's allocator caches from the train step must be released, ``torch.cuda.empty_cache()``,
  before the engine wakes into it);
- **weight sync**: after ``optimizer.step()`` (gradients still alive) the policy's full tensors are gathered in
  buckets of ``sync_bucket_mb`` MiB in the compute dtype, each freed before the next (a bucket fills until it
  reaches the size, so it holds at most the size plus the largest tensor); the engine holds its
  bf16 weights (awake for them only: ``wake_up(tags=["weights"])``) but not its KV cache, or its whole share
  without sleep mode. The old way, every parameter gathered in fp32 at once, is planned beside it for comparison.

The terms:

- weights, gradients and AdamW state, sharded over the N GPUs (FSDP2 / ZeRO-3: ``sharding: full``), or the
  weights replicated in bf16 with gradients and optimizer sharded (ZeRO-2: ``sharding: zero2``). Master
  weights, gradients and optimizer moments are fp32 (spec section 8: bf16 weights do not learn at lr 1e-6);
- the frozen reference model (RL), bf16, sharded like the policy;
- the two layers' worth of unsharded bf16 weights FSDP gathers ahead (gather + prefetch);
- FSDP's root unit: ``fully_shard`` goes on each decoder layer and vision block, then on the root, which keeps
  every other parameter (embed_tokens, lm_head, the vision patch embedding and merger, the final norm: 1.14B of
  the 7B's) and is not resharded after its forward: the policy's stays gathered in bf16 from its forward to
  the end of its backward, with lm_head's unsharded bf16 gradient alive from the first backward op to the
  root's reduce-scatter at the very end; the reference's, whose forwards never run a backward, would stay
  gathered from its first forward on (measured on 2 gloo processes: a root unit is still unsharded after a
  no-grad forward): the trainer reshards it after each forward, so it counts only in the train step;
- activations of the language model for the step's tokens and of the vision tower for its patches: every
  layer's saved tensors, or with gradient checkpointing each layer's input plus one layer recomputed. RL
  without checkpointing runs ``videor1.rl.policy``'s shared-prompt forward: the prompt once (its key/value
  cache repeated for the G rows) plus G completions; with checkpointing (no cache in training) G whole
  sequences, the vision tower still once (its output shared by the G rows). SFT: the whole sequence;
- the completion logits: out in the compute dtype, the fp32 copy the log-probs take (none when computing in
  fp32), the softmax logsumexp's backward makes, and the gradient;
- vLLM's share of the GPU when a colocated engine does the rollouts (``gpu_memory_utilization``), per phase as
  above; and, inside that share, its weights, a profiling allowance and the KV cache left (``plan.vllm``);
- a fixed allowance for the CUDA context and allocator fragmentation.

Activation bytes per token and layer are counted from the layer's tensors (in the compute dtype): the attention block keeps
its input norm, q, k, v, the attention output and o_proj's input; the SwiGLU MLP its norm, gate, up,
act(gate) and their product; two residuals. Flash attention keeps no seq × seq matrix.

Not planned: the transformers rollout backend's full sampler copy of the policy on every rank (``nproc`` > 1).
"""

from __future__ import annotations

import json
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

GIB = 1 << 30
MIB = 1 << 20
CONFIGS = Path(__file__).parent / "configs"
CONTEXT_BYTES = 2 * GIB  # CUDA context, NCCL buffers, allocator fragmentation
CHUNK_TOKENS = 1024  # videor1.rl.policy.CHUNK_TOKENS (not imported: the plan runs without the trainer's dependencies)
HEADROOM = 0.02  # a plan fits when its largest phase leaves 2 % of the GPU free; the margin: GiB left beyond that
# vLLM's profile run (a forward over max_num_batched_tokens, the vision encoder on its largest dummy input, the
# sampler) and its CUDA graphs, inside its gpu_memory_utilization budget: an estimate, not measured here
VLLM_OVERHEAD_BYTES = 4 * GIB


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
    root_params: int = 0  # FSDP's root unit: every parameter outside the decoder layers and vision blocks
    largest_tensor_params: int = 0  # the largest single parameter (the 7B: embed_tokens and lm_head, 152,064 × 3,584)
    lm_head_params: int = 0
    patch: int = 14  # the vision patch side in pixels (Qwen2.5-VL 14, Qwen3-VL and Qwen3.5 16)

    @classmethod
    def from_config(cls, config) -> ModelShape:
        """Parameter counts from the real transformers model of the config's family, built on the meta device (no
        memory, no weights)."""
        from .models.families import family_of

        with torch.device("meta"):
            model = family_of(config).model_class()(config)
        text, vision = config.text_config, config.vision_config
        layers = list(model.model.language_model.layers) + list(model.model.visual.blocks)
        in_layers = {id(p) for layer in layers for p in layer.parameters()}  # what fully_shard puts in its own units
        return cls(
            params=sum(p.numel() for p in model.parameters()),
            vision_params=sum(p.numel() for p in model.model.visual.parameters()),
            largest_layer_params=max(sum(p.numel() for p in layer.parameters()) for layer in layers),
            hidden=text.hidden_size,
            intermediate=text.intermediate_size,
            kv_dim=text.num_key_value_heads * (text.hidden_size // text.num_attention_heads),
            layers=text.num_hidden_layers,
            vocab=text.vocab_size,
            vision_hidden=vision.hidden_size,
            vision_intermediate=vision.intermediate_size,
            vision_layers=vision.depth,
            root_params=sum(p.numel() for p in model.parameters() if id(p) not in in_layers),
            largest_tensor_params=max(p.numel() for p in model.parameters()),
            lm_head_params=model.lm_head.weight.numel(),
            patch=vision.patch_size,
        )

    @classmethod
    def from_file(cls, path: str | Path) -> ModelShape:
        """The shape of a config.json of any supported family (its ``model_type`` names it)."""
        from transformers import AutoConfig

        config = json.loads(Path(path).read_text())
        return cls.from_config(AutoConfig.for_model(config.pop("model_type"), **config))


@dataclass(frozen=True)
class RunShape:
    """What one GPU computes in one micro-step, and (RL) how its rollout engine shares the GPU."""

    stage: str  # sft | rl
    prompt_tokens: int  # text + vision tokens of the prompt (SFT: the whole sequence)
    completion_tokens: int = 0  # per completion (RL)
    completions: int = 0  # G (RL)
    vision_patches: int = 0  # vision patches (14×14 or 16×16 pixels) before the 2×2 merge
    gradient_checkpointing: bool = True
    sharding: str = "full"  # full | zero2 | none
    vllm_share: float = 0.0  # colocated vLLM's gpu_memory_utilization (RL); 0: no vLLM engine
    compute_bytes: int = 2  # activations and reference weights: 2 under bf16 autocast, 4 in fp32
    master_bytes: int = 4  # weights, gradients, AdamW moments: 4 (fp32, what learns); 2 only for a 1-GPU benchmark
    vllm_sleep: bool = False  # rl.vllm_sleep: the engine sleeps (level 1) through the train step
    sync_bucket_mb: int = 1024  # rl.train.sync_bucket_mb: MiB of full tensors gathered at a time for the weight sync
    max_model_len: int = 0  # rl.max_model_len: the engine's context; 0: prompt + completion
    checkpoint_bytes: int = 2  # the policy checkpoint's dtype on disk (the SFT stage's model_dtype)
    prompts_per_step: int = 0  # all ranks' prompts a step (RL: the rollout's sequences per rank)
    temporal: bool = False  # G/2 more sequences per video prompt, on shuffled frames


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
        per_layer = (
            p * (query + _key_elements(h, model.kv_dim, False))  # the prompt, once
            + g * c * query
            + g * (p + c) * _key_elements(h, model.kv_dim, True)
            + g * c * (p + c)
        )
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


TRAIN_STEP = "train step"
START_UP, ROLLOUT, SYNC, FULL_GATHER = "start-up", "rollout", "weight sync (streamed)", "weight sync (full gather)"


@dataclass
class MemoryPlan:
    gpus: int
    gpu_gb: float  # GiB, as the driver reports it (an "80 GB" A100: 80 GiB)
    terms: dict[str, float] = field(default_factory=dict)  # GiB per GPU of the train step
    phases: dict[str, dict[str, float]] = field(default_factory=dict)  # GiB per GPU of every phase the peak is over
    comparison: dict[str, dict[str, float]] = field(default_factory=dict)  # phases shown beside, never the peak
    host_gb: dict[str, float] = field(default_factory=dict)  # host RAM (GiB): start-up, and vLLM asleep
    vllm: dict = field(default_factory=dict)  # inside vLLM's share: weights, allowance, KV cache (GiB and tokens)

    def __post_init__(self):
        if not self.phases:
            self.phases = {TRAIN_STEP: self.terms}

    @staticmethod
    def _sum(terms: dict[str, float]) -> float:
        return sum(terms.values())

    @property
    def totals(self) -> dict[str, float]:
        """GiB per GPU of each phase (comparisons included, after the counted ones)."""
        return {name: self._sum(t) for name, t in {**self.phases, **self.comparison}.items()}

    def margin(self, total: float) -> float:
        """GiB left below the line a plan must stay under ((1 − HEADROOM) × the GPU); negative: over it."""
        return (1 - HEADROOM) * self.gpu_gb - total

    @property
    def peak_phase(self) -> str:
        return max(self.phases, key=lambda name: self._sum(self.phases[name]))

    @property
    def total_gb(self) -> float:
        """The largest phase's total (an SFT plan, or a plan without phases: the train step)."""
        return self._sum(self.phases[self.peak_phase])

    @property
    def margin_gb(self) -> float:
        return self.margin(self.total_gb)

    @property
    def fits(self) -> bool:
        return self.margin_gb >= 0  # 2 % headroom

    @property
    def vllm_fits(self) -> bool:
        """vLLM's share holds its weights, the allowance and one ``max_model_len`` sequence's KV cache, and the
        profile's prompt + completion fits in ``max_model_len`` (true without an engine)."""
        return self.vllm.get("ok", True)


def _vllm_inside(model: ModelShape, run: RunShape, gpus: int, gpu_gb: float) -> dict:
    """What vLLM's ``gpu_memory_utilization`` × GPU holds: its weights (compute dtype, tensor parallel 1), a profiling
    allowance, and the KV cache left, in GiB and tokens, against what one rank's rollout asks of it."""
    budget = run.vllm_share * gpu_gb * GIB
    weights = run.compute_bytes * model.params
    kv = budget - weights - VLLM_OVERHEAD_BYTES
    per_token = 2 * model.layers * model.kv_dim * run.compute_bytes  # k and v of every layer
    sequence = run.prompt_tokens + run.completion_tokens
    max_model_len = run.max_model_len or sequence
    g = max(run.completions, 1)
    per_prompt = g + (g // 2 if run.temporal else 0)  # a video prompt: G ordered and G/2 shuffled
    sequences = -(-run.prompts_per_step // gpus) * per_prompt
    kv_tokens = max(int(kv // per_token), 0)
    return {
        "budget_gb": budget / GIB,
        "weights_gb": weights / GIB,
        "allowance_gb": VLLM_OVERHEAD_BYTES / GIB,
        "kv_cache_gb": kv / GIB,
        "kv_tokens": kv_tokens,
        "kv_bytes_per_token": per_token,
        "max_model_len": max_model_len,
        "sequence_tokens": sequence,
        "rollout_sequences": sequences,
        "rollout_tokens": sequences * sequence,
        "ok": kv_tokens >= max_model_len and sequence <= max_model_len,
    }


def plan_memory(
    model: ModelShape, run: RunShape, gpus: int, gpu_gb: float, *, context_bytes: int = CONTEXT_BYTES
) -> MemoryPlan:
    """Per-GPU GiB of each term of each phase (see the module's docstring) and whether the largest phase fits in
    ``gpu_gb``. ``context_bytes``: the fixed allowance (0 when planning a CPU run, where no CUDA context exists)."""
    p, shards = model.params, {"full": gpus, "zero2": gpus, "none": 1}[run.sharding]
    dtype = {2: "bf16", 4: "fp32"}[run.compute_bytes]
    m, master = run.master_bytes, {2: "bf16", 4: "fp32"}[run.master_bytes]
    a = run.compute_bytes
    fsdp = run.sharding == "full" and gpus > 1
    rl = run.stage == "rl"
    static: dict[str, float] = {}  # what every phase after start-up holds
    if run.sharding == "zero2":
        static["weights (bf16, replicated)"] = 2 * p
        static[f"master weights ({master}, sharded)"] = m * p / shards
    else:
        static[f"weights ({master} master, sharded)" if run.sharding == "full" else f"weights ({master})"] = (
            m * p / shards
        )
    static[f"gradients ({master})"] = m * p / shards  # freed by zero_grad(set_to_none) at the next update only
    static[f"AdamW moments ({master})"] = 2 * m * p / shards
    if rl:
        static[f"reference model ({dtype})"] = a * p / shards
    context = {"CUDA context, fragmentation": context_bytes} if context_bytes else {}

    t = dict(static)
    if fsdp:
        t["gathered layers (bf16, 2 in flight)"] = 2 * 2 * model.largest_layer_params
        t[f"FSDP root unit ({dtype}, unsharded)"] = a * model.root_params  # from its forward to its backward's end
        t[f"lm_head gradient ({dtype}, unsharded)"] = a * model.lm_head_params  # until the root's reduce-scatter
        if rl:  # gathered during each of its forwards, beside the policy's; resharded right after (RLTrainer.update)
            t[f"reference root unit ({dtype}, during its forward)"] = a * model.root_params
    # the vision tower runs once per group on both RL paths (``separate_logprobs`` shares its output by G rows)
    patches = run.vision_patches
    t["activations, language model"] = _language_model_activations(model, run)
    if rl:
        t["reference forward (transient)"] = _reference_forward(model, run)
    if patches:
        per_patch_layer = a * (
            _query_elements(model.vision_hidden, model.vision_intermediate)
            + _key_elements(model.vision_hidden, model.vision_hidden, False)
        )
        if run.gradient_checkpointing:
            vision = patches * (per_patch_layer + a * model.vision_hidden * model.vision_layers)
        else:
            vision = patches * per_patch_layer * model.vision_layers
        t["activations, vision tower"] = vision
    # RL: the log-prob head computes CHUNK_TOKENS positions' logits at a time and recomputes them in the backward
    # (videor1.rl.policy.selected_logprobs); SFT's loss takes the whole sequence's logits
    logit_rows = min(run.completions * run.completion_tokens, CHUNK_TOKENS) if rl else run.prompt_tokens
    fp32_copy = 4 if a < 4 else 0
    name = f"logits, {CHUNK_TOKENS} positions at a time" if rl else "logits"
    t[f"{name} ({dtype} + fp32 copy + softmax + grad)" if fp32_copy else f"{name} (fp32 + softmax + grad)"] = (
        logit_rows * model.vocab * (a + fp32_copy + 4 + 4)
    )
    vllm_share = {"vLLM (gpu_memory_utilization)": run.vllm_share * gpu_gb * GIB} if run.vllm_share else {}
    if not run.vllm_sleep:
        t.update(vllm_share)
    t.update(context)

    phases: dict[str, dict[str, float]] = {}
    comparison: dict[str, dict[str, float]] = {}
    host: dict[str, float] = {}
    vllm: dict = {}
    if rl:
        start = {k: v for k, v in static.items() if not k.startswith(("gradients", "AdamW"))}
        if fsdp:  # one full tensor broadcast at a time, in the checkpoint's dtype: at most the largest
            start[f"checkpoint tensor in flight ({'bf16' if run.checkpoint_bytes == 2 else 'fp32'})"] = (
                run.checkpoint_bytes * model.largest_tensor_params
            )
        phases[START_UP] = {**start, **context}
        host["start-up, rank 0 (the checkpoint)"] = run.checkpoint_bytes * p
        if fsdp:
            host["start-up, each other rank"] = 0
    if rl and run.vllm_share:
        phases[ROLLOUT] = {**static, **vllm_share, **context}
    phases[TRAIN_STEP] = t
    if rl and run.vllm_share:
        engine = {f"vLLM weights ({dtype}, woken for the sync)": a * p} if run.vllm_sleep else vllm_share
        phases[SYNC] = {
            **static,
            **engine,
            f"sync bucket ({dtype}, {run.sync_bucket_mb} MiB)": run.sync_bucket_mb * MIB,
            f"largest tensor ({dtype}, gathered)": a * model.largest_tensor_params,
            **context,
        }
        comparison[FULL_GATHER] = {**static, **engine, f"all parameters gathered ({master})": m * p, **context}
        if run.vllm_sleep:
            host[f"vLLM asleep, weights of {gpus} engine{'s' if gpus > 1 else ''} (node)"] = gpus * a * p
        vllm = _vllm_inside(model, run, gpus, gpu_gb)
    gib = lambda terms: {k: v / GIB for k, v in terms.items()}  # noqa: E731
    return MemoryPlan(
        gpus,
        gpu_gb,
        gib(t),
        {k: gib(v) for k, v in phases.items()},
        {k: gib(v) for k, v in comparison.items()},
        gib(host),
        vllm,
    )


def video_tokens(frames: int, pixels: int, merge: int = 2, patch: int = 14, temporal: int = 2) -> tuple[int, int]:
    """(patches, LLM tokens) of a video of ``frames`` frames at ``pixels`` pixels each."""
    patches = pixels // (patch * patch) * (frames // temporal)  # a patch spans 2 frames × patch × patch
    return patches, patches // (merge * merge)


def describe(plan: MemoryPlan) -> dict:
    """The plan as JSON: every phase's terms, total and margin, the peak phase, host RAM and vLLM's inside."""

    def r(x: float) -> float:
        return round(x, 2)

    def phase(terms: dict) -> dict:
        total = sum(terms.values())
        return {"terms": {k: r(v) for k, v in terms.items()}, "total_gb": r(total), "margin_gb": r(plan.margin(total))}

    return {
        "gpus": plan.gpus,
        "gpu_gb": plan.gpu_gb,
        "terms": {k: r(v) for k, v in plan.terms.items()},
        "phases": {k: phase(v) for k, v in plan.phases.items()},
        "comparison": {k: phase(v) for k, v in plan.comparison.items()},
        "peak_phase": plan.peak_phase,
        "total_gb": r(plan.total_gb),
        "margin_gb": r(plan.margin_gb),
        "headroom": HEADROOM,
        "fits": plan.fits,
        "host_gb": {k: r(v) for k, v in plan.host_gb.items()},
        "vllm": {k: r(v) if isinstance(v, float) else v for k, v in plan.vllm.items()},
    }


PROMPT_TEXT_TOKENS = 256  # the chat template, question, options and instruction around the video (measured: ~200)


def profile_runs(
    params: dict,
    profile: str,
    *,
    sharding: str = "full",
    gradient_checkpointing: bool | None = None,
    patch: int = 14,
) -> dict[str, RunShape]:
    """The SFT and RL micro-steps of a ``params.yaml`` profile: its frames, pixels, sequence lengths, G, and the RL
    engine's knobs: ``rollout_backend``, ``gpu_memory_utilization``, ``vllm_sleep``, ``max_model_len`` (``rl.``) and
    ``sync_bucket_mb`` (``rl.train.``, where ``RLConfig`` reads it; else ``rl.``). ``gradient_checkpointing``: None
    reads each stage's ``train.gradient_checkpointing``. ``patch``: the model's vision patch side (``ModelShape.patch``)."""
    sft, rl = params[profile]["sft"], params[profile]["rl"]
    sft_patches, _ = video_tokens(sft["media"]["max_frames"], sft["media"]["video_max_pixels"], patch=patch)
    rl_patches, rl_tokens = video_tokens(rl["media"]["max_frames"], rl["media"]["video_max_pixels"], patch=patch)
    train = rl["train"]
    vllm = rl.get("rollout_backend") == "vllm"

    def checkpointing(section: dict) -> bool:
        return section.get("gradient_checkpointing", True) if gradient_checkpointing is None else gradient_checkpointing

    return {
        "sft": RunShape(
            "sft",
            prompt_tokens=sft["max_length"],
            vision_patches=sft_patches,
            gradient_checkpointing=checkpointing(sft["train"]),
            sharding=sharding,
            compute_bytes=2 if sft["train"].get("bf16") else 4,
        ),
        "rl": RunShape(
            "rl",
            prompt_tokens=rl_tokens + PROMPT_TEXT_TOKENS,
            completion_tokens=train["max_completion_length"],
            completions=train["num_generations"],
            vision_patches=rl_patches,
            gradient_checkpointing=checkpointing(train),
            sharding=sharding,
            vllm_share=rl.get("gpu_memory_utilization", 0.0) if vllm else 0.0,
            compute_bytes=2 if train.get("compute_dtype", "bfloat16") == "bfloat16" else 4,
            vllm_sleep=bool(rl.get("vllm_sleep", False)) and vllm,
            sync_bucket_mb=int(train.get("sync_bucket_mb", rl.get("sync_bucket_mb", 1024))),  # RLConfig's
            max_model_len=int(
                rl.get("max_model_len") or train.get("max_prompt_length", 0) + train["max_completion_length"]
            ),
            checkpoint_bytes=2 if sft.get("model_dtype") == "bfloat16" else 4,
            prompts_per_step=train.get("prompts_per_step", 1),
            temporal=bool(train.get("temporal", False)),
        ),
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
