"""Benchmark: reading video frames, the two ways the pipeline saves decoding time.

1. Sampling: 16 frames with ``videor1.media.read_frames`` (a demux pass, then a seek per keyframe group that holds a
   wanted frame) against ``decode_all_frames`` (one full sequential decode) and seq16 (plain PyAV decoding up to the
   last wanted frame, converting only those: the full decode's work without its conversions, so seq16 / fast is
   what seeking alone saves), with decord (where installed, ``pip install -e .[bench]``) and the demux pass
   (``probe_video``) beside them; on H.264 clips encoded here (640 × 360 at GOP 250 and 30, 320 × 240 at GOP 12,
   ``--seconds`` long) and ``../shared/media/sample.mp4`` where present. That the fast path returns exactly the
   full decode's frames is a test (tests/test_media.py).
2. The eval frame cache: three models × 16/32/64 frames read each video 9 times. Without the cache every read
   decodes; with it the first model's stage decodes each video once for its three frame counts
   (``FrameCache.warm``) and every later read, by any model, loads the stored frames (each model's stage its own
   ``FrameCache`` handle, as its own process). The reference protocol's rules, one thread, on ``--videos`` clips of
   60 s at 30 fps, 640 × 360, GOP 250 (a downloaded benchmark video's shape). Equal frames: tests/test_protocol.py.

Every method is timed ``--repeats`` times, interleaved, after a warm-up.

    python -m bench.media [--repeats 3] [--seconds 20] [--videos 4]
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import av
import numpy as np
import torch

from bench import harness
from videor1.eval.protocol import PROTOCOLS
from videor1.media import FrameCache, decode_all_frames, frame_indices, load_medium, probe_video, read_frames

try:
    import decord
except ImportError:  # only for reference: not a dependency of the pipeline
    decord = None

SAMPLE = harness.REPO.parent / "shared" / "media" / "sample.mp4"
CLIPS = {"640x360_gop250": (640, 360, 250), "640x360_gop30": (640, 360, 30), "320x240_gop12": (320, 240, 12)}
MODELS, FRAMES = ("base", "sft", "rl"), (16, 32, 64)


def encode(path: Path, seconds: int, width: int, height: int, gop: int, seed: int = 0, fps: int = 30) -> Path:
    """H.264 with a fixed keyframe interval: moving gradients, a moving square and light noise, so every frame
    differs and decoding costs what a real clip's does."""
    rng = np.random.default_rng(seed)
    x, y = np.meshgrid(np.arange(width), np.arange(height))
    params = f"keyint={gop}:min-keyint={gop}:scenecut=0"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=fps, options={"x264-params": params, "preset": "veryfast"})
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        for t in range(fps * seconds):
            img = np.stack([(x + 3 * t) % 256, (y + 2 * t) % 256, ((x + y) // 2 + t) % 256], -1)
            side, left, top = height // 4, (7 * t) % (width - height // 4), (5 * t) % (height - height // 4)
            img[top : top + side, left : left + side] = 255
            img = np.clip(img + rng.integers(0, 12, img.shape), 0, 255).astype(np.uint8)
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
    return path


def read_sequential(path: Path, indices: list[int]) -> torch.Tensor:
    """Decode from the start to the last wanted frame; convert only the wanted frames."""
    wanted, got = set(indices), {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= max(indices):
                break
    return torch.from_numpy(np.stack([got[i] for i in indices])).permute(0, 3, 1, 2)


def sampling(name: str, path: Path, repeats: int) -> dict:
    info = probe_video(path)
    indices = frame_indices(info.total_frames, 16)
    cases = {
        "probe": lambda: probe_video(path),
        "fast": lambda: read_frames(path, indices),
        "full": lambda: decode_all_frames(path),
        "seq16": lambda: read_sequential(path, indices),
    }
    if decord is not None:
        cases["decord"] = lambda: decord.VideoReader(str(path), num_threads=1).get_batch(indices).asnumpy()
    with av.open(str(path)) as container:
        keyframes = sum(1 for p in container.demux(container.streams.video[0]) if p.size and p.is_keyframe)
    t = {k: v.median for k, v in harness.interleave(cases, repeats).items()}
    row = {"video": name, "size": f"{info.width}x{info.height}", "frames": info.total_frames, "keyframes": keyframes}
    row |= {f"{k} s": v for k, v in t.items()}
    return row | {"full / fast": f"{t['full'] / t['fast']:.1f}x", "seq16 / fast": f"{t['seq16'] / t['fast']:.1f}x"}


def frame_cache(videos: list[Path], root: Path, repeats: int) -> dict[str, harness.Timing]:
    rules = {f: PROTOCOLS["reference"].rules(f) for f in FRAMES}

    def without() -> None:
        for _model in MODELS:
            for f in FRAMES:
                for v in videos:
                    load_medium(v, "video", rules[f])

    def cached() -> None:
        for _model in MODELS:
            cache = FrameCache(root, 64 << 30)
            for v in videos:
                cache.warm(v, list(rules.values()))
            for f in FRAMES:
                for v in videos:
                    load_medium(v, "video", rules[f], cache=cache)

    cases = {"without the cache (9 decodes a video)": without, "with the cache (1 decode a video, then loads)": cached}
    return harness.interleave(cases, repeats, before=lambda _: shutil.rmtree(root, ignore_errors=True))


def main() -> None:
    ap = harness.arguments(__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=int, default=20, help="length of the sampling part's clips")
    ap.add_argument("--videos", type=int, default=4, help="60-s clips of the frame cache part")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        files = {"sample.mp4": SAMPLE} if SAMPLE.is_file() else {}
        files |= {name: encode(tmp / f"{name}.mp4", args.seconds, *shape) for name, shape in CLIPS.items()}
        rows = [sampling(name, path, args.repeats) for name, path in files.items()]
        videos = [encode(tmp / f"clip{i}.mp4", 60, 640, 360, 250, seed=i) for i in range(args.videos)]
        cache = frame_cache(videos, tmp / "cache", args.repeats)
    plain, cached = cache.values()
    cache_rows = [{"": name, "media seconds": t.median} for name, t in cache.items()]
    md = [
        "# Reading video frames: 16 sampled against a full decode, and the eval frame cache",
        "",
        f"One thread; medians of {args.repeats} interleaved runs after a warm-up.",
        "",
        f"## Sampling 16 frames ({args.seconds}-s clips)",
        "",
        *harness.table(rows),
        "",
        f"## The frame cache: {len(MODELS)} models × {', '.join(map(str, FRAMES))} frames, {args.videos} videos of 60 s",
        "",
        *harness.table(
            cache_rows + [{"": "**speed-up**", "media seconds": f"**{plain.median / cached.median:.2f}×**"}]
        ),
    ]
    record = {"config": vars(args), "sampling": rows, "frame_cache": {n: t.summary() for n, t in cache.items()}}
    versions = {"av": av.__version__} | ({"decord": decord.__version__} if decord is not None else {})
    print(harness.write("media", record, md, args.out, **versions))


if __name__ == "__main__":
    main()
