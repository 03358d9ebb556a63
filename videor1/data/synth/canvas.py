"""Drawing shapes on small RGB canvases and writing them as H.264 mp4 or PNG."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
from PIL import Image, ImageDraw, ImageFont

COLORS = {
    "red": (220, 40, 40),
    "green": (40, 200, 60),
    "blue": (50, 90, 230),
    "yellow": (235, 220, 40),
    "white": (245, 245, 245),
}
SHAPES = ("square", "circle", "triangle")
BACKGROUND = (24, 24, 24)


def blank(height: int, width: int, color=BACKGROUND) -> np.ndarray:
    canvas = np.empty((height, width, 3), np.uint8)
    canvas[:] = color
    return canvas


def draw(canvas: np.ndarray, shape: str, color: str, cy: float, cx: float, size: int) -> None:
    """Draw a filled shape of side/diameter ``size`` centred at (cy, cx), in place."""
    h, w, _ = canvas.shape
    yy, xx = np.mgrid[0:h, 0:w]
    half = size / 2
    if shape == "square":
        mask = (np.abs(yy + 0.5 - cy) <= half) & (np.abs(xx + 0.5 - cx) <= half)
    elif shape == "circle":
        mask = (yy + 0.5 - cy) ** 2 + (xx + 0.5 - cx) ** 2 <= half**2
    elif shape == "triangle":  # apex up
        rel_y = (yy + 0.5 - (cy - half)) / size  # 0 at apex, 1 at base
        mask = (rel_y >= 0) & (rel_y <= 1) & (np.abs(xx + 0.5 - cx) <= rel_y * half)
    else:
        raise ValueError(f"unknown shape {shape!r}")
    canvas[mask] = COLORS[color]


def draw_text(canvas: np.ndarray, text: str) -> np.ndarray:
    """Black text centred on the canvas, with Pillow's built-in font (no font files needed)."""
    image = Image.fromarray(canvas)
    pen = ImageDraw.Draw(image)
    font = ImageFont.load_default(size=max(10, canvas.shape[0] // 4))
    left, top, right, bottom = pen.textbbox((0, 0), text, font=font)
    x = (canvas.shape[1] - (right - left)) / 2 - left
    y = (canvas.shape[0] - (bottom - top)) / 2 - top
    pen.text((x, y), text, fill=(0, 0, 0), font=font)
    return np.asarray(image)


def yuv420p(rgb: np.ndarray) -> np.ndarray:
    """BT.601 limited-range Y'CbCr 4:2:0 of an H x W x 3 uint8 frame (H, W even), in integer arithmetic, laid out
    as PyAV's yuv420p ndarray (the Y rows, then U, then V, H * 3 / 2 rows of W)."""
    r, g, b = (rgb[..., i].astype(np.int32) for i in range(3))
    y = ((66 * r + 129 * g + 25 * b + 128) >> 8) + 16
    u = ((-38 * r - 74 * g + 112 * b + 128) >> 8) + 128
    v = ((112 * r - 94 * g - 18 * b + 128) >> 8) + 128
    h, w = y.shape

    def half(c: np.ndarray) -> np.ndarray:  # the mean of each 2 x 2 block, rounded
        return (c.reshape(h // 2, 2, w // 2, 2).sum(axis=(1, 3)) + 2) // 4

    return np.concatenate([y.ravel(), half(u).ravel(), half(v).ravel()]).astype(np.uint8).reshape(h * 3 // 2, w)


def write_mp4(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """H.264 in MP4, one encoder thread, so the bytes depend only on the frames.

    The RGB -> yuv420p conversion is ours (``yuv420p``), not FFmpeg's: its swscale conversion, inside the encoder
    or by ``reformat``, gave one 56 x 56 synthetic clip different bytes in some runs of the same frames (3 of 30
    encodes in one process, and again in the test suite under load), so two checkouts hashed data/synth
    differently."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w, _ = frames[0].shape
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        stream.options = {"preset": "veryfast", "crf": "18", "threads": "1"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(yuv420p(frame), format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_png(path: Path, canvas: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path, format="PNG", optimize=False)
