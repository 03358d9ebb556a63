"""Resizing to the sizes smart_resize picks: antialiased bicubic on uint8, as qwen-vl-utils."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from PIL import Image


def resize_frames(frames: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """uint8 T x C x H x W -> uint8 T x C x height x width.

    torch's uint8 bicubic path is about 9x faster than the float path and differs
    by 0.02 in mean pixel value (spec section 8).
    """
    if frames.shape[-2:] == (height, width):
        return frames
    return F.interpolate(frames, size=(height, width), mode="bicubic", antialias=True, align_corners=False)


def resize_image(image: Image.Image, height: int, width: int) -> Image.Image:
    if image.size == (width, height):
        return image
    return image.resize((width, height), Image.Resampling.BICUBIC)
