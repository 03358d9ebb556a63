"""Benchmark: eval's media time with the frame cache against without, for three models at three frame counts.

An eval of base, SFT and RL at 16, 32 and 64 frames reads every video nine times. Without the cache each
read decodes (``load_medium`` as the runner called it before). With it, the first model's stage decodes each
video once at the union of its three frame counts' indices (``FrameCache.warm``, as ``tasks.evaluate`` does
per benchmark), and every read after that, by any model, loads the stored frames. Both under the reference
protocol's frame and pixel rules (105,369-pixel cap, float32 indices), on one thread, in fresh processes'
order: model by model, each model every frame count.

Inputs: H.264 clips the script encodes with PyAV (``--videos`` of ``--seconds`` at 30 fps, 640 × 360, GOP 250,
as a downloaded benchmark video), and ``../shared/media/sample.mp4`` when present. The cached frames are checked
equal to the decoded ones. Results: ``bench/results/eval_media.{json,md}``.

    python bench/bench_eval_media.py [--videos 4] [--seconds 60]
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

import av
import numpy as np
import torch
from _env import REPO, code_version, machine_info

import videor1  # noqa: F401
from videor1.eval.protocol import PROTOCOLS
from videor1.media import FrameCache, load_medium

SAMPLE = REPO.parent / "shared" / "media" / "sample.mp4"
MODELS = ("base", "sft", "rl")
FRAMES = (16, 32, 64)


def encode(path: Path, seconds: int, seed: int, w: int = 640, h: int = 360, fps: int = 30) -> Path:
    """Moving gradients and noise blocks: enough detail that decoding costs what a real clip's does."""
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (h // 8, w // 8, 3), dtype=np.uint8).repeat(8, 0).repeat(8, 1)
    with av.open(str(path), "w") as c:
        s = c.add_stream("libx264", rate=fps)
        s.width, s.height, s.pix_fmt = w, h, "yuv420p"
        s.options = {"g": "250", "preset": "veryfast", "threads": "2"}
        for i in range(seconds * fps):
            img = np.roll(base, (i * 3) % w, axis=1)
            img[:, :, 0] = (img[:, :, 0].astype(np.int32) + i) % 256
            for p in s.encode(av.VideoFrame.from_ndarray(img, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return path


def without_cache(videos: list[Path], rules: dict) -> tuple[float, dict]:
    t0, out = time.perf_counter(), {}
    for model in MODELS:
        for f in FRAMES:
            for v in videos:
                out[(model, f, v)] = load_medium(v, "video", rules[f]).video.frames
    return time.perf_counter() - t0, out


def with_cache(videos: list[Path], rules: dict, root: Path) -> tuple[float, float, dict]:
    """Total media time, and the first model's share (decoding and writing the cache)."""
    t0, out, first = time.perf_counter(), {}, 0.0
    for model in MODELS:
        cache = FrameCache(root, 64 << 30)  # each model's stage is its own process with its own handle
        for v in videos:
            cache.warm(v, [rules[f] for f in FRAMES])
        for f in FRAMES:
            for v in videos:
                out[(model, f, v)] = load_medium(v, "video", rules[f], cache=cache).video.frames
        if model == MODELS[0]:
            first = time.perf_counter() - t0
    return time.perf_counter() - t0, first, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--videos", type=int, default=4)
    ap.add_argument("--seconds", type=int, default=60)
    ap.add_argument("--out", default=str(REPO / "bench" / "results" / "eval_media"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    protocol = PROTOCOLS["reference"]
    rules = {f: protocol.rules(f) for f in FRAMES}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        videos = [encode(tmp / f"clip{i}.mp4", args.seconds, i) for i in range(args.videos)]
        if SAMPLE.is_file():
            videos.append(Path(shutil.copy(SAMPLE, tmp / "sample.mp4")))
        plain_s, plain = without_cache(videos, rules)
        cached_s, first_s, cached = with_cache(videos, rules, tmp / "cache")
        equal = all(torch.equal(plain[k], cached[k]) for k in plain)
        cache_mb = sum(p.stat().st_size for p in (tmp / "cache").glob("*.npz")) / 2**20
        sizes = {v.name: round(v.stat().st_size / 2**20, 1) for v in videos}
    record = {
        "videos": len(videos),
        "seconds_each": args.seconds,
        "file_mb": sizes,
        "models": list(MODELS),
        "frame_counts": list(FRAMES),
        "protocol": protocol.label,
        "without_cache_s": round(plain_s, 2),
        "with_cache_s": round(cached_s, 2),
        "with_cache_first_model_s": round(first_s, 2),
        "speedup": round(plain_s / cached_s, 2),
        "frames_equal": equal,
        "cache_mb": round(cache_mb, 1),
        "code": code_version(),
        "machine": machine_info(av=av.__version__),
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.with_suffix(".json").write_text(json.dumps(record, indent=1))
    md = [
        "# Eval media time: frame cache against decoding every read",
        "",
        f"{len(videos)} videos ({args.seconds} s at 30 fps, 640 × 360, GOP 250; plus sample.mp4 if present), "
        f"{len(MODELS)} models × frame counts {', '.join(map(str, FRAMES))}, protocol `{protocol.label}`, one thread.",
        "",
        "| | media seconds |",
        "|---|---|",
        f"| without the cache (9 decodes a video) | {plain_s:.2f} |",
        f"| with the cache (1 decode a video, then loads) | {cached_s:.2f} |",
        f"| of which the first model (decode + write) | {first_s:.2f} |",
        f"| **speed-up** | **{plain_s / cached_s:.2f}×** |",
        "",
        f"Frames equal to a separate decode: {equal}. Cache on disk: {cache_mb:.0f} MB.",
    ]
    out.with_suffix(".md").write_text("\n".join(md) + "\n")
    print("\n".join(md))


if __name__ == "__main__":
    main()
