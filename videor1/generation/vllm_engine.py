"""Generation with vLLM's offline engine (GPU only; runs in the GPU environment, see README).

Frames reach vLLM as arrays already sampled and resized by ``videor1.media``,
with their sampled fps as metadata and frame sampling switched off, so a row
gets the same frames, pixels and temporal positions as on the transformers path.

Not run on the project's CPU machines: vLLM needs CUDA. Written against vLLM's
offline API (``LLM``, ``SamplingParams``, prompts with ``multi_modal_data``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..media import Medium
from ..models import load_processor
from .base import Completion, GenerationRequest, SamplingConfig
from .inputs import chat_text


def _multi_modal_data(medium: Medium | None) -> dict:
    if medium is None:
        return {}
    if medium.data_type == "image":
        return {"image": medium.image}
    frames = medium.video.frames.permute(0, 2, 3, 1).numpy()  # T x H x W x C, uint8
    n = frames.shape[0]
    metadata = {
        "fps": medium.video.sample_fps,
        "total_num_frames": n,
        "frames_indices": list(range(n)),
        "duration": n / medium.video.sample_fps,
        "video_backend": "pyav",
        "do_sample_frames": False,
    }
    return {"video": (np.ascontiguousarray(frames), metadata)}


class VLLMBackend:
    """``GenerationBackend`` over ``vllm.LLM`` for a local model directory."""

    def __init__(self, model_path: str, *, tensor_parallel_size: int = 1, max_model_len: int = 8192,
                 gpu_memory_utilization: float = 0.9, dtype: str = "bfloat16", seed: int = 0):
        try:
            from vllm import LLM
        except ImportError as err:  # the orchestration environment does not carry vLLM
            raise RuntimeError("the vllm backend needs vLLM: run this stage in the GPU environment (README, 'GPU environment')") from err
        self.processor = load_processor(model_path)
        self.llm = LLM(
            model=str(model_path),
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            seed=seed,
            limit_mm_per_prompt={"image": 1, "video": 1},
            mm_processor_kwargs={"do_sample_frames": False},
        )

    def sync_weights(self, model) -> None:
        """Load a training policy's current weights into the engine (RL rollouts after each update).

        vLLM's model accepts (name, tensor) pairs in the Hugging Face layout (the route TRL's GRPO
        takes with a colocated engine, tensor parallel size 1). Not run here: no GPU.
        """
        state = ((name, tensor.detach()) for name, tensor in model.state_dict().items())
        self.llm.llm_engine.model_executor.driver_worker.model_runner.model.load_weights(state)

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig) -> list[list[Completion]]:
        from vllm import SamplingParams

        params = SamplingParams(n=sampling.n, temperature=sampling.temperature, top_p=sampling.top_p,
                                max_tokens=sampling.max_new_tokens, seed=sampling.seed)
        prompts = [{"prompt": chat_text(self.processor, r.messages, add_generation_prompt=True),
                    "multi_modal_data": _multi_modal_data(r.medium)} for r in requests]
        outputs = self.llm.generate(prompts, params, use_tqdm=False)
        return [[Completion(text=o.text, token_ids=list(o.token_ids), finished=o.finish_reason == "stop")
                 for o in out.outputs] for out in outputs]
