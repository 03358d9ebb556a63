"""Processor inputs for a batch of chats with their media, as the model sees them in training and eval.

Frames and images arrive already sampled and resized by ``videor1.media`` (spec
section 5), so the processor is told not to sample or resize again; the video's
sampled fps goes in as metadata so ``second_per_grid_ts`` (temporal positions)
is right. The result carries ``mm_token_type_ids`` and ``second_per_grid_ts``:
pass both to the model, or M-RoPE silently falls back to other positions.
"""

from __future__ import annotations

from collections.abc import Sequence

from transformers import BatchFeature
from transformers.video_utils import VideoMetadata

from ..media import Medium


def chat_text(processor, messages: list[dict], *, add_generation_prompt: bool) -> str:
    return processor.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


def video_metadata(medium: Medium) -> VideoMetadata:
    n = medium.num_frames
    return VideoMetadata(total_num_frames=n, fps=medium.video.sample_fps, frames_indices=list(range(n)))


def processor_inputs(processor, texts: Sequence[str], media: Sequence[Medium | None], *, padding_side: str = "left") -> BatchFeature:
    """Tokenize ``texts`` (chat-templated) with their media; media[i] belongs to texts[i] (or None for text only)."""
    images = [m.image for m in media if m is not None and m.data_type == "image"]
    videos = [m for m in media if m is not None and m.data_type == "video"]
    kwargs = {}
    if images:
        kwargs["images"] = images
        kwargs["images_kwargs"] = {"do_resize": False}
    if videos:
        kwargs["videos"] = [m.video.frames for m in videos]
        kwargs["videos_kwargs"] = {"video_metadata": [video_metadata(m) for m in videos],
                                   "do_sample_frames": False, "do_resize": False,
                                   "cap_pixels_per_frame": True}  # moot without resizing; silences a warning
    return processor(text=list(texts), padding=True, padding_side=padding_side, return_tensors="pt", **kwargs)
