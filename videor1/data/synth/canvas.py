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


def write_mp4(path: Path, frames: list[np.ndarray], fps: int) -> None:
    """H.264 in MP4, one encoder thread so the bytes depend only on the frames.

    Each frame is converted to yuv420p before it reaches the encoder: left to the encoder, PyAV's own RGB
    conversion gave one 56x56 clip different bytes in 3 of 30 encodes of the same frames (so two checkouts made
    different datasets); converted first, 30 of 30 are identical."""
    path.parent.mkdir(parents=True, exist_ok=True)
    h, w, _ = frames[0].shape
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.thread_count = 1
        stream.options = {"preset": "veryfast", "crf": "18", "threads": "1"}
        for frame in frames:
            yuv = av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p").to_ndarray()
            for packet in stream.encode(av.VideoFrame.from_ndarray(yuv, format="yuv420p")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)


def write_png(path: Path, canvas: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(canvas).save(path, format="PNG", optimize=False)
