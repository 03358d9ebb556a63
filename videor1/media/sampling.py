"""Frame-count, frame-index and resize rules of qwen-vl-utils (spec section 5).

Pure integer/float arithmetic, no decoding: the readers in ``video.py`` and
``image.py`` call these, and so can anything that needs token counts without
touching a file.
"""

from __future__ import annotations

import math

FRAME_FACTOR = 2  # Qwen2.5-VL embeds frames two at a time: always an even count
MAX_ASPECT_RATIO = 200


def _round_by(x: float, factor: int) -> int:
    return round(x / factor) * factor  # Python's round: half to even, as the reference


def _floor_by(x: float, factor: int) -> int:
    return math.floor(x / factor) * factor


def _ceil_by(x: float, factor: int) -> int:
    return math.ceil(x / factor) * factor


def smart_nframes(
    total_frames: int,
    video_fps: float,
    *,
    fps: float = 2.0,
    min_frames: int = 4,
    max_frames: int = 16,
) -> int:
    """How many frames to sample from a video: ``fps`` per second, clamped, even.

    n = floor_even(min(max(total / video_fps * fps, min_frames), max_frames, total)).
    Raises ``ValueError`` unless 2 <= n <= total_frames.
    """
    if total_frames <= 0 or not video_fps or video_fps <= 0 or not math.isfinite(video_fps):
        raise ValueError(f"cannot sample frames: total_frames={total_frames}, video_fps={video_fps}")
    lo = _ceil_by(min_frames, FRAME_FACTOR)
    hi = _floor_by(max_frames, FRAME_FACTOR)
    n = total_frames / video_fps * fps
    n = min(max(n, lo), hi, total_frames)
    n = _floor_by(n, FRAME_FACTOR)
    if not FRAME_FACTOR <= n <= total_frames:
        raise ValueError(
            f"nframes={n} must lie in [{FRAME_FACTOR}, {total_frames}] "
            f"(total_frames={total_frames}, video_fps={video_fps}, fps={fps})"
        )
    return n


def frame_indices(total_frames: int, nframes: int) -> list[int]:
    """round(linspace(0, total - 1, n)) with round-half-to-even, in exact integer arithmetic.

    Value i is i * (total - 1) / (n - 1); computing it with integers avoids the
    float error that can tip an exact .5 either way.
    """
    if nframes < 1 or total_frames < 1:
        raise ValueError(f"need nframes >= 1 and total_frames >= 1, got {nframes}, {total_frames}")
    if nframes == 1:
        return [0]
    den = nframes - 1
    out = []
    for i in range(nframes):
        q, r = divmod(i * (total_frames - 1), den)
        if 2 * r > den or (2 * r == den and q % 2 == 1):
            q += 1
        out.append(q)
    return out


def frame_indices_float32(total_frames: int, nframes: int) -> list[int]:
    """The public eval script's indices: ``torch.linspace(0, total - 1, n).round()`` in float32. Equal to
    ``frame_indices`` for every video below 135,435 frames; above, float32 can land on an exact .5 that
    rounds down (135,435 frames, 64 samples: frame 131,134 where the exact rule takes 131,135)."""
    import torch

    if nframes < 1 or total_frames < 1:
        raise ValueError(f"need nframes >= 1 and total_frames >= 1, got {nframes}, {total_frames}")
    return torch.linspace(0, total_frames - 1, nframes).round().long().tolist()


MODEL_SEQ_LEN = 128000  # qwen-vl-utils' default token budget of one video (its MODEL_SEQ_LEN)


def video_total_pixels(factor: int = 28) -> int:
    """qwen-vl-utils' default ``total_pixels`` of one video: 90% of MODEL_SEQ_LEN merged tokens of side ``factor``."""
    return int(MODEL_SEQ_LEN * factor * factor * 0.9)


VIDEO_TOTAL_PIXELS = video_total_pixels(28)


def qwen_vl_utils_max_pixels(
    min_pixels: int, max_pixels: int, nframes: int, total_pixels: int | None = None, *, factor: int = 28
) -> int:
    """The per-frame pixel cap qwen-vl-utils' ``fetch_video`` really applies:
    ``max(min(max_pixels, total_pixels / nframes * 2), int(1.05 * min_pixels))``, ``total_pixels`` by default
    ``video_total_pixels(factor)``. With min = max = 128·28·28 (the public eval script) a frame may hold up to
    105,369 pixels, not 100,352."""
    total = video_total_pixels(factor) if total_pixels is None else total_pixels
    return int(max(min(max_pixels, total / nframes * FRAME_FACTOR), int(min_pixels * 1.05)))


def smart_resize(
    height: int,
    width: int,
    *,
    factor: int = 28,
    min_pixels: int,
    max_pixels: int,
) -> tuple[int, int]:
    """Target (height, width): multiples of ``factor``, area in [min_pixels, max_pixels], aspect kept.

    Rounds each side to the nearest multiple; if the area is too large, scales
    by sqrt(h*w/max_pixels) and floors; if too small, scales up and ceils.
    """
    if height <= 0 or width <= 0:
        raise ValueError(f"image size must be positive, got {height}x{width}")
    if min_pixels > max_pixels:
        raise ValueError(f"min_pixels={min_pixels} > max_pixels={max_pixels}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(
            f"absolute aspect ratio must be at most {MAX_ASPECT_RATIO}, got {max(height, width) / min(height, width):.1f}"
        )
    h_bar = max(factor, _round_by(height, factor))
    w_bar = max(factor, _round_by(width, factor))
    if h_bar * w_bar > max_pixels:
        beta = math.sqrt(height * width / max_pixels)
        h_bar = max(factor, _floor_by(height / beta, factor))
        w_bar = max(factor, _floor_by(width / beta, factor))
    elif h_bar * w_bar < min_pixels:
        beta = math.sqrt(min_pixels / (height * width))
        h_bar = _ceil_by(height * beta, factor)
        w_bar = _ceil_by(width * beta, factor)
    return h_bar, w_bar
