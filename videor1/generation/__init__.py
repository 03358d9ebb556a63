"""Generation backends behind one interface: transformers in process, vLLM (CUDA or CPU build)."""

from .base import Completion, GenerationBackend, GenerationRequest, PromptTooLong, SamplingConfig
from .hf import TransformersBackend
from .inputs import chat_text, media_tokens, processor_inputs, prompt_length, too_long


def make_backend(
    kind: str,
    model_path: str,
    *,
    batch_size: int = 8,
    device: str = "cpu",
    dtype: str = "float32",
    tensor_parallel_size: int = 1,
    max_model_len: int = 8192,
    gpu_memory_utilization: float = 0.9,
    seed: int = 0,
    colocated: bool = False,
    sleep_mode: bool = False,
    attn_implementation: str = "sdpa",
) -> GenerationBackend:
    """A backend by name: ``transformers`` or ``vllm`` (``attn_implementation``: the transformers model's attention;
    vLLM picks its own attention backend)."""
    if kind == "transformers":
        import torch

        from ..models import load_model, load_processor

        model = load_model(
            model_path, dtype=getattr(torch, dtype), device=device, attn_implementation=attn_implementation
        )
        return TransformersBackend(model, load_processor(model_path), batch_size=batch_size)
    if kind == "vllm":
        from .vllm_engine import VLLMBackend

        return VLLMBackend(
            model_path,
            tensor_parallel_size=tensor_parallel_size,
            max_model_len=max_model_len,
            gpu_memory_utilization=gpu_memory_utilization,
            dtype=dtype,
            seed=seed,
            colocated=colocated,
            sleep_mode=sleep_mode,
        )
    raise ValueError(f"unknown generation backend {kind!r} (expected 'transformers' or 'vllm')")


__all__ = [
    "Completion",
    "GenerationBackend",
    "GenerationRequest",
    "PromptTooLong",
    "SamplingConfig",
    "TransformersBackend",
    "chat_text",
    "make_backend",
    "media_tokens",
    "processor_inputs",
    "prompt_length",
    "too_long",
]
