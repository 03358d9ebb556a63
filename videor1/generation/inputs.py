"""Processor inputs for a batch of chats with their media, as the model sees them in training and eval.

Frames and images arrive already sampled and resized by ``videor1.media`` (spec
section 5), so the processor is told not to sample or resize again; the video's
video's metadata goes in as its family needs it: the sampled fps for Qwen2.5-VL's
``second_per_grid_ts`` (temporal positions), the source fps and frame indices for
Qwen3-VL's prompt timestamps. The result carries ``mm_token_type_ids`` (and, for
Qwen2.5-VL, ``second_per_grid_ts``): pass them to the model, or M-RoPE silently
falls back to other positions.
vLLM gets the same frames, metadata and processor switches (``vllm_engine``).
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import BatchFeature
from transformers.video_utils import VideoMetadata

from ..media import Medium
from ..models.families import input_family

# What the processor must not redo: our readers already sampled and resized (spec section 5).
IMAGE_KWARGS = {"do_resize": False}
VIDEO_KWARGS = {
    "do_sample_frames": False,
    "do_resize": False,
    "cap_pixels_per_frame": True,
}  # the cap is moot unresized


def chat_text(processor, messages: list[dict], *, add_generation_prompt: bool) -> str:
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def video_metadata(processor, medium: Medium) -> dict:
    """The sampled frames' metadata as the processor's family needs it (videor1.models.families): Qwen2.5-VL's
    temporal positions come from the sampled fps, Qwen3-VL's prompt timestamps from the source fps and indices."""
    return input_family(processor).video_metadata(medium.video)


def processor_inputs(
    processor, texts: Sequence[str], media: Sequence[Medium | None], *, padding_side: str = "left"
) -> BatchFeature:
    """Tokenize ``texts`` (chat-templated) with their media; media[i] belongs to texts[i] (or None for text only)."""
    input_family(processor).check_sizes(media)
    images = [m.image for m in media if m is not None and m.data_type == "image"]
    videos = [m for m in media if m is not None and m.data_type == "video"]
    kwargs = {}
    if images:
        kwargs["images"] = images
        kwargs["images_kwargs"] = dict(IMAGE_KWARGS)
    if videos:
        kwargs["videos"] = [m.video.frames for m in videos]
        kwargs["videos_kwargs"] = {
            "video_metadata": [VideoMetadata(**video_metadata(processor, m)) for m in videos],
            **VIDEO_KWARGS,
        }
    return processor(text=list(texts), padding=True, padding_side=padding_side, return_tensors="pt", **kwargs)


def media_tokens(processor, medium: Medium | None) -> int:
    """How many tokens the processor expands the medium's one placeholder into (timestamps included)."""
    return 0 if medium is None else input_family(processor).placeholder_tokens(processor.tokenizer, medium)


def prompt_length(processor, messages: list[dict], medium: Medium | None) -> int:
    """Tokens of the chat-templated prompt once its one placeholder is expanded; no pixels are processed."""
    n = len(processor.tokenizer(chat_text(processor, messages, add_generation_prompt=True))["input_ids"])
    return n + (media_tokens(processor, medium) - 1 if medium is not None else 0)


def too_long(processor, messages: list[dict], medium: Medium | None, limit: int | None) -> str | None:
    """The reason a prompt cannot be generated from (its length over ``limit``), or None when it fits."""
    if limit is None:
        return None
    n = prompt_length(processor, messages, medium)
    return f"prompt too long: {n} tokens > {limit}" if n > limit else None
