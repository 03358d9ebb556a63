"""The frame and pixel settings of a run, and reading one row's medium under them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from .image import read_image
from .video import SampledVideo, read_video


@dataclass(frozen=True)
class MediaRules:
    """Frame and pixel settings (spec section 5). Defaults are the paper's training values."""

    fps: float = 2.0
    min_frames: int = 4
    max_frames: int = 16
    video_min_pixels: int = 128 * 28 * 28
    video_max_pixels: int = 128 * 28 * 28
    image_min_pixels: int = 4 * 28 * 28
    image_max_pixels: int = 401_408


@dataclass(frozen=True)
class Medium:
    """One row's decoded medium: a sampled video or an image, resized per the rules."""

    data_type: str  # "video" or "image"
    video: SampledVideo | None = None
    image: Image.Image | None = None

    @property
    def num_frames(self) -> int:
        return 0 if self.video is None else int(self.video.frames.shape[0])


def load_medium(path: str | Path, data_type: str, rules: MediaRules, *, threads: int = 1) -> Medium:
    """Decode ``path`` as ``data_type`` under ``rules``; raises MediaError (or ValueError for an unknown type)."""
    if data_type == "video":
        video = read_video(path, fps=rules.fps, min_frames=rules.min_frames, max_frames=rules.max_frames,
                           min_pixels=rules.video_min_pixels, max_pixels=rules.video_max_pixels, threads=threads)
        return Medium("video", video=video)
    if data_type == "image":
        return Medium("image", image=read_image(path, min_pixels=rules.image_min_pixels, max_pixels=rules.image_max_pixels))
    raise ValueError(f"unknown data_type {data_type!r} (expected 'video' or 'image')")
