"""One vision-tower call per forward, whatever the modalities: the same collectives on every process.

Qwen2.5-VL's ``Qwen2_5_VLModel.forward`` (transformers 5.19) embeds the text, then calls its vision tower
once for ``pixel_values`` (images) and once more for ``pixel_values_videos``. Under DeepSpeed ZeRO-3 (and
any parameter sharding) every call gathers the tower's parameters: a process whose micro-batch holds an
image and a video makes twice the gathers of a process holding one modality, so the processes' collectives
stop matching (gloo: "Received data size doesn't match expected size. Is there a distributed collective
mismatch"; NCCL: a hang, or tensors silently exchanged with the wrong partner).

``use_one_vision_call(model)`` gives the model a forward that runs the tower first, exactly once: on the image
patches followed by the video patches (their ``grid_thw`` concatenated likewise), splits the output back into
the images' and the videos' embeddings in order, and hands them to transformers' own forward as
``mm_encoder_outputs``, which scatters them into the placeholder tokens as before. Every process then runs
the same modules in the same order: vision tower, text embedding, decoder layers, head.

The tower's position ids, full-attention ``cu_seqlens``, window index and window ``cu_seqlens`` are all built
per grid item (image or video) with running offsets, attention never crosses an item, and the patch embedding,
MLPs and merger work row by row: one call on the concatenation computes what the two calls compute (equal to
within float rounding of the larger matrix products). A forward with one modality calls the tower on exactly
the tensors transformers passes it: its outputs and gradients are bit-identical to transformers' forward.

A forward without any vision input on a process of a distributed run (no such micro-batch in this data: the
collator's placeholder batch is a real row with its medium) still calls the tower once, on one black 2×2-patch
image, and adds 0 × its output to the text embeddings: the same gathers and gradient reductions as the other
processes, zero gradients for the tower, the same values as the plain forward. On one process it does not
(an unused tower keeps no gradient, as before).
"""

from __future__ import annotations

import inspect
import types

import torch
import torch.distributed as dist
from transformers.modeling_outputs import BaseModelOutputWithPooling

MODALITY_PREFIXES = ("image_", "video_")  # precomputed per-modality tower inputs (image_cu_seqlens, ...)


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def vision_features(inner, pixel_values, image_grid_thw, pixel_values_videos, video_grid_thw, **kwargs):
    """(image outputs or None, video outputs or None) from one call of ``inner.visual``: each a
    ``BaseModelOutputWithPooling`` whose ``pooler_output`` is the tuple of per-item embeddings, as
    ``get_image_features`` / ``get_video_features`` return them."""
    visual = inner.visual
    parts = [
        (p.type(visual.dtype), g)
        for p, g in ((pixel_values, image_grid_thw), (pixel_values_videos, video_grid_thw))
        if p is not None
    ]
    if len(parts) == 1:  # exactly the tensors transformers' get_*_features pass: bit-identical outputs
        pixels, grid = parts[0]
    else:
        pixels, grid = torch.cat([p for p, _ in parts]), torch.cat([g for _, g in parts])
    out = visual(pixels, grid_thw=grid, return_dict=True, **kwargs)
    sizes = (grid.prod(-1) // visual.spatial_merge_size**2).tolist()
    items = torch.split(out.pooler_output, sizes)
    # Qwen3-VL's DeepStack features (one tensor per tapped tower layer), split per item like the embeddings
    deep = [torch.split(f, sizes) for f in getattr(out, "deepstack_features", None) or []]

    def part(items_of: slice):
        if not deep:
            return BaseModelOutputWithPooling(pooler_output=items[items_of])
        return type(out)(pooler_output=items[items_of], deepstack_features=[d[items_of] for d in deep])

    n_images = len(image_grid_thw) if pixel_values is not None else 0
    image = part(slice(0, n_images)) if pixel_values is not None else None
    video = part(slice(n_images, None)) if pixel_values_videos is not None else None
    return image, video


def black_image(visual, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Patches and grid_thw of the smallest image: one black merge block (2×2 patches, one placeholder token)."""
    merge, cfg = visual.spatial_merge_size, visual.config
    width = cfg.in_channels * cfg.temporal_patch_size * cfg.patch_size**2
    return (
        torch.zeros(merge * merge, width, device=device, dtype=visual.dtype),
        torch.tensor([[1, merge, merge]], device=device),
    )


def _dummy_vision_zero(inner, device, **kwargs) -> torch.Tensor:
    """0 × the tower's output on a black image: a scalar zero that runs the tower forward and backward."""
    pixels, grid = black_image(inner.visual, device)
    out = inner.visual(pixels, grid_thw=grid, return_dict=True, **kwargs)
    deep = getattr(out, "deepstack_features", None) or []  # Qwen3-VL's DeepStack mergers take part too
    return (out.pooler_output.sum() + sum(f.sum() for f in deep)) * 0.0


def dummy_vision_inputs(model, device) -> dict:
    """Model inputs of one black image between its vision markers: the least forward that runs every module
    (tower, embedding, decoder, head), for a micro-batch whose every row was skipped."""
    inner = getattr(model, "model", model)
    config = inner.config
    pixels, grid = black_image(inner.visual, device)
    ids = [config.vision_start_token_id, config.image_token_id, config.vision_end_token_id]
    return {
        "input_ids": torch.tensor([ids], device=device),
        "attention_mask": torch.ones(1, 3, dtype=torch.long, device=device),
        "mm_token_type_ids": torch.tensor([[0, 1, 0]], device=device),
        "pixel_values": pixels,
        "image_grid_thw": grid,
    }


def one_vision_call_forward(self, *args, **kwargs):
    """``Qwen2_5_VLModel.forward`` with the vision tower run once, before anything else (see the module docstring)."""
    forward = type(self).forward  # the class's own: a deep copy of the model rebinds this method to the copy
    call = inspect.signature(forward).bind(self, *args, **kwargs).arguments
    extra = call.pop("kwargs", {})  # TransformersKwargs, passed to the tower as transformers passes them
    if call.get("mm_encoder_outputs") is not None or any(k.startswith(MODALITY_PREFIXES) for k in extra):
        # the caller's own encoder outputs, or per-modality tower inputs (image_cu_seqlens, ...) that cannot be
        # concatenated: transformers' forward as it is (one tower call per modality)
        return forward(self, *args, **kwargs)
    pixel_values, pixel_values_videos = call.pop("pixel_values", None), call.pop("pixel_values_videos", None)
    if pixel_values is not None or pixel_values_videos is not None:
        image, video = vision_features(
            self, pixel_values, call.get("image_grid_thw"), pixel_values_videos, call.get("video_grid_thw"), **extra
        )
        call["mm_encoder_outputs"] = {k: v for k, v in (("image", image), ("video", video)) if v is not None}
    elif _distributed():  # no vision here, maybe some on another process: run the tower anyway, weight 0, and first
        embeds = call.get(
            "inputs_embeds"
        )  # (as there: under ZeRO-3 the order of the modules is the order of the gathers)
        zero = _dummy_vision_zero(self, (embeds if embeds is not None else call["input_ids"]).device, **extra)
        if embeds is None:
            embeds = self.get_input_embeddings()(call["input_ids"])
        call["inputs_embeds"] = embeds + zero.to(embeds.dtype)
    del call["self"]
    return forward(self, **call, **extra)


def use_one_vision_call(model) -> None:
    """Give a model of any family (the ``…ForConditionalGeneration`` or its inner model) the one-call forward."""
    inner = getattr(model, "model", model)
    if not hasattr(inner, "visual"):
        raise TypeError(f"{type(inner).__name__} has no vision tower (expected a vision-language model's inner model)")
    inner.forward = types.MethodType(one_vision_call_forward, inner)
