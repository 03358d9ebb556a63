"""A handful of rows that must not get through collect, one per way real data goes wrong.

Written to ``train_broken.json`` beside the good rows so the default pipeline exercises the
quarantine: collect rejects each row at the step ``BROKEN_CASES`` names, and the summary report
counts them. Real datasets have all of these: crawled videos that are empty, cut off mid-download
or not videos at all, clips too short to sample, banner images, dangling paths or paths out of the
data root, rows that break the schema, duplicate ids.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .canvas import blank, draw, write_mp4, write_png

FIRST_ID = 1_000_001  # far above any good row's id

# (name, data_type, path, problem_type, expected collect step); the media is made by _write_media.
BROKEN_CASES: list[tuple[str, str, str, str, str]] = [
    ("zero_byte", "video", "./broken/zero_byte.mp4", "multiple choice", "media"),
    ("not_a_video", "video", "./broken/not_a_video.mp4", "multiple choice", "media"),
    ("truncated", "video", "./broken/truncated.mp4", "multiple choice", "media"),
    ("one_frame", "video", "./broken/one_frame.mp4", "multiple choice", "media"),
    ("banner_image", "image", "./broken/banner.png", "multiple choice", "media"),
    ("missing_file", "video", "./broken/missing.mp4", "multiple choice", "media"),
    ("parent_path", "video", "../../outside.mp4", "multiple choice", "schema"),
    ("unknown_problem_type", "image", "./broken/ok.png", "essay", "schema"),
    ("duplicate_id", "image", "./broken/ok.png", "multiple choice", "duplicate"),
]


def _clip(n_frames: int, size: int = 56) -> list[np.ndarray]:
    frames = []
    for i in range(n_frames):
        canvas = blank(size, size)
        draw(canvas, "square", "red", size / 2, 8 + 4 * i, 12)
        frames.append(canvas)
    return frames


def _write_media(root: Path) -> None:
    d = root / "broken"
    d.mkdir(parents=True)
    (d / "zero_byte.mp4").write_bytes(b"")
    (d / "not_a_video.mp4").write_text("<html><body>404 Not Found</body></html>\n")
    write_mp4(d / "whole.mp4", _clip(16), fps=4)
    whole = (d / "whole.mp4").read_bytes()
    (d / "truncated.mp4").write_bytes(whole[: len(whole) // 2])  # the index (moov) is at the end: lost
    (d / "whole.mp4").unlink()
    write_mp4(d / "one_frame.mp4", _clip(1), fps=4)
    write_png(d / "banner.png", blank(2, 600, (200, 200, 200)))  # aspect ratio 300 > the allowed 200
    write_png(d / "ok.png", blank(84, 84))


def _row(problem_id: int, name: str, data_type: str, path: str, problem_type: str) -> dict:
    return {
        "problem_id": problem_id,
        "problem": f"Which shape is shown? ({name.replace('_', ' ')})",
        "data_type": data_type,
        "problem_type": problem_type,
        "options": ["A. square", "B. circle", "C. triangle", "D. none"] if problem_type == "multiple choice" else [],
        "solution": "<answer>A</answer>",
        "path": path,
        "data_source": f"synth-broken/{name}",
    }


def write_broken(root: Path, file_name: str = "train_broken.json") -> list[dict]:
    """Write the broken media under ``root / 'broken'`` and the rows to ``root / file_name``."""
    _write_media(root)
    rows = []
    for offset, (name, data_type, path, problem_type, _) in enumerate(BROKEN_CASES):
        problem_id = FIRST_ID if name == "duplicate_id" else FIRST_ID + offset
        rows.append(_row(problem_id, name, data_type, path, problem_type))
    (root / file_name).write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
    return rows
