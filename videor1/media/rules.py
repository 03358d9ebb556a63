"""The frame and pixel settings of a run, and reading one row's medium under them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from PIL import Image

from ..params.check import above, at_least, one_of, require
from .image import read_image
from .sampling import FRAME_FACTOR
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
    # "bounds": frames lie in [video_min_pixels, video_max_pixels]. "qwen_vl_utils": the cap fetch_video
    # really applies (``qwen_vl_utils_max_pixels``), as the public eval script ran it.
    video_pixel_rule: str = "bounds"
    # "exact": round(linspace) in exact arithmetic. "float32": torch.linspace's float32, as the public script.
    frame_index_rule: str = "exact"
    # Side of one merged vision token in pixels (patch x spatial merge): 28 for Qwen2.5-VL, 32 for Qwen3-VL and
    # Qwen3.5. A property of the model, not a params knob: stages take it from the model's family.
    factor: int = 28

    def __post_init__(self):
        one_of(self, "video_pixel_rule", ("bounds", "qwen_vl_utils"))
        one_of(self, "frame_index_rule", ("exact", "float32"))
        above(self, 0, "fps")
        at_least(self, 1, "min_frames", "video_min_pixels", "image_min_pixels", "factor")
        at_least(self, FRAME_FACTOR, "max_frames")  # frames go to the model in pairs: fewer than 2 samples none
        for kind in ("video", "image"):
            low, high = getattr(self, f"{kind}_min_pixels"), getattr(self, f"{kind}_max_pixels")
            require(low <= high, f"{kind}_max_pixels", f"must be >= {kind}_min_pixels ({low}), got {high}")


@dataclass(frozen=True)
class Medium:
    """One row's decoded medium: a sampled video or an image, resized per the rules."""

    data_type: str  # "video" or "image"
    video: SampledVideo | None = None
    image: Image.Image | None = None

    @property
    def num_frames(self) -> int:
        return 0 if self.video is None else int(self.video.frames.shape[0])


def load_medium(path: str | Path, data_type: str, rules: MediaRules, *, threads: int = 1, cache=None) -> Medium:
    """Decode ``path`` as ``data_type`` under ``rules``; raises MediaError (or ValueError for an unknown type).
    ``cache``: a ``FrameCache`` that videos are read from and written to."""
    if data_type == "video" and cache is not None:
        return Medium("video", video=cache.load(path, rules, threads=threads))
    if data_type == "video":
        video = read_video(
            path,
            fps=rules.fps,
            min_frames=rules.min_frames,
            max_frames=rules.max_frames,
            min_pixels=rules.video_min_pixels,
            max_pixels=rules.video_max_pixels,
            threads=threads,
            factor=rules.factor,
            pixel_rule=rules.video_pixel_rule,
            index_rule=rules.frame_index_rule,
        )
        return Medium("video", video=video)
    if data_type == "image":
        return Medium(
            "image",
            image=read_image(
                path, min_pixels=rules.image_min_pixels, max_pixels=rules.image_max_pixels, factor=rules.factor
            ),
        )
    raise ValueError(f"unknown data_type {data_type!r} (expected 'video' or 'image')")
