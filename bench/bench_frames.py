"""Benchmark: sampling 16 frames from a video vs decoding the whole file.

For each video it times, on one thread:

* fast   - ``videor1.media.read_frames(path, indices)``: a demux pass, then a
           seek per keyframe group that holds a wanted frame;
* full   - ``videor1.media.decode_all_frames(path)``: one full sequential decode
           (the reference the fast path must equal);
* seq16  - plain PyAV decoding from the start up to the last wanted frame and
           converting only the wanted frames to RGB: the same decode work as
           ``full`` without its per-frame conversion and copies, so
           ``seq16 / fast`` is what seeking alone saves;
* decord - ``decord.VideoReader(path, num_threads=1).get_batch(indices)``, for
           reference only;
* probe  - ``videor1.media.probe_video(path)`` (the demux pass alone),

all at ``indices = frame_indices(total, 16)``. It checks that the fast path, seq16
and decord return exactly the frames of the full decode at those indices.

Inputs: ``../shared/media/sample.mp4`` (skipped when absent) and H.264 clips
the script encodes with PyAV into a temporary directory (long GOP, GOP 30,
GOP 12). Results go to ``bench/results/frames.json`` and ``frames.md``.

Run from the repository root:

    python bench/bench_frames.py [--repeats 5] [--seconds 20]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import av
import decord
import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _env import code_version  # noqa: E402  (bench/ is on sys.path)
from _env import machine_info as common_machine_info

from videor1.media import decode_all_frames, frame_indices, probe_video, read_frames  # noqa: E402

SAMPLE = REPO.parent / "shared" / "media" / "sample.mp4"
RESULTS = REPO / "bench" / "results"
N_SAMPLED = 16


@dataclass(frozen=True)
class Clip:
    """A video the benchmark encodes itself."""

    name: str
    width: int
    height: int
    fps: int
    gop: int


CLIPS = [
    Clip("synth_640x360_gop250", 640, 360, 30, 250),
    Clip("synth_640x360_gop30", 640, 360, 30, 30),
    Clip("synth_320x240_gop12", 320, 240, 30, 12),
]


def synth_frame(t: int, width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """A moving gradient, a moving square and light noise: every frame differs, motion is predictable."""
    x = np.arange(width, dtype=np.int32)[None, :]
    y = np.arange(height, dtype=np.int32)[:, None]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (x + 3 * t) % 256
    img[..., 1] = (y + 2 * t) % 256
    img[..., 2] = ((x + y) // 2 + t) % 256
    side = height // 4
    left = (7 * t) % (width - side)
    top = (5 * t) % (height - side)
    img[top : top + side, left : left + side] = (255, 255, 255)
    noise = rng.integers(0, 12, size=img.shape, dtype=np.uint8)
    return np.clip(img.astype(np.int16) + noise, 0, 255).astype(np.uint8)


def encode_clip(clip: Clip, seconds: int, path: Path) -> None:
    """H.264 (libx264, yuv420p) with a fixed keyframe interval and no scene-cut keyframes."""
    rng = np.random.default_rng(0)
    params = f"keyint={clip.gop}:min-keyint={clip.gop}:scenecut=0"
    with av.open(str(path), mode="w") as out:
        stream = out.add_stream("libx264", rate=clip.fps, options={"x264-params": params})
        stream.width, stream.height, stream.pix_fmt = clip.width, clip.height, "yuv420p"
        stream.codec_context.gop_size = clip.gop
        for t in range(clip.fps * seconds):
            frame = av.VideoFrame.from_ndarray(synth_frame(t, clip.width, clip.height, rng), format="rgb24")
            out.mux(stream.encode(frame))
        out.mux(stream.encode())


def keyframe_count(path: Path) -> int:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        return sum(1 for p in container.demux(stream) if p.size and p.is_keyframe)


def timed(fn, repeats: int) -> dict:
    """Median and best wall time of ``repeats`` calls."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return {"median_s": statistics.median(times), "min_s": min(times), "runs_s": times}


def read_decord(path: Path, indices: list[int]) -> torch.Tensor:
    reader = decord.VideoReader(str(path), num_threads=1)
    return torch.from_numpy(reader.get_batch(indices).asnumpy()).permute(0, 3, 1, 2).contiguous()


def read_sequential(path: Path, indices: list[int]) -> torch.Tensor:
    """Decode from the start to the last wanted frame; convert only the wanted frames."""
    wanted, last, got = set(indices), max(indices), {}
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        stream.thread_count = 1
        for i, frame in enumerate(container.decode(stream)):
            if i in wanted:
                got[i] = frame.to_ndarray(format="rgb24")
            if i >= last:
                break
    return torch.from_numpy(np.stack([got[i] for i in indices])).permute(0, 3, 1, 2).contiguous()


def frames_differing(a: torch.Tensor, b: torch.Tensor) -> int | None:
    """How many of the T frames differ (None when the shapes differ)."""
    if a.shape != b.shape:
        return None
    return int((a != b).flatten(1).any(dim=1).sum())


def bench_file(name: str, path: Path, repeats: int, nominal_gop: int | None) -> dict:
    info = probe_video(path)
    indices = frame_indices(info.total_frames, N_SAMPLED)
    full = decode_all_frames(path)
    reference = full[indices]
    fast = read_frames(path, indices)
    seq = read_sequential(path, indices)
    dec = read_decord(path, indices)
    keyframes = keyframe_count(path)
    times = {
        "probe": timed(lambda: probe_video(path), repeats),
        "fast": timed(lambda: read_frames(path, indices), repeats),
        "full": timed(lambda: decode_all_frames(path), repeats),
        "seq16": timed(lambda: read_sequential(path, indices), repeats),
        "decord": timed(lambda: read_decord(path, indices), repeats),
    }
    return {
        "name": name,
        "path": str(path),
        "width": info.width,
        "height": info.height,
        "fps": info.fps,
        "frames": info.total_frames,
        "full_decode_frames": int(full.shape[0]),
        "gop_nominal": nominal_gop,
        "keyframes": keyframes,
        "gop_mean": info.total_frames / keyframes,
        "indices": indices,
        "seconds": times,
        "ratio_full_over_fast": times["full"]["median_s"] / times["fast"]["median_s"],
        "ratio_seq16_over_fast": times["seq16"]["median_s"] / times["fast"]["median_s"],
        "ratio_decord_over_fast": times["decord"]["median_s"] / times["fast"]["median_s"],
        "fast_equals_full": torch.equal(fast, reference),
        "seq16_equals_full": torch.equal(seq, reference),
        "decord_equals_full": torch.equal(dec, reference),
        "decord_frames_differing": frames_differing(dec, reference),
    }


def machine_info() -> dict:
    return common_machine_info(
        torch_threads=torch.get_num_threads(),
        av=av.__version__,
        libavcodec=".".join(map(str, av.library_versions["libavcodec"])),
        decord=decord.__version__,
        numpy=np.__version__,
    )


def yes_no(flag: bool) -> str:
    return "yes" if flag else "NO"


def markdown(results: list[dict], repeats: int) -> str:
    head = (
        "| video | size | frames | keyframes (mean GOP) | probe s | fast s | full s | seq16 s | decord s "
        "| full/fast | seq16/fast | fast == full | seq16 == full | decord == full |"
    )
    rule = "|" + "---|" * (head.count("|") - 1)
    lines = [f"Median of {repeats} runs, 1 thread, {N_SAMPLED} frames sampled.", "", head, rule]
    for r in results:
        s = {k: v["median_s"] for k, v in r["seconds"].items()}
        decord_ok = "yes" if r["decord_equals_full"] else f"NO ({r['decord_frames_differing']}/{N_SAMPLED} differ)"
        lines.append(
            f"| {r['name']} | {r['width']}x{r['height']} | {r['frames']} | {r['keyframes']} ({r['gop_mean']:.0f}) "
            f"| {s['probe']:.3f} | {s['fast']:.3f} | {s['full']:.3f} | {s['seq16']:.3f} | {s['decord']:.3f} "
            f"| {r['ratio_full_over_fast']:.1f}x | {r['ratio_seq16_over_fast']:.1f}x "
            f"| {yes_no(r['fast_equals_full'])} | {yes_no(r['seq16_equals_full'])} | {decord_ok} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per method (the median is reported)")
    parser.add_argument("--seconds", type=int, default=20, help="length of each generated clip")
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for frames.json and frames.md")
    args = parser.parse_args()
    torch.set_num_threads(1)

    results = []
    if SAMPLE.is_file():
        results.append(bench_file("sample.mp4", SAMPLE, args.repeats, None))
    else:
        print(f"skipping {SAMPLE}: not found")
    with tempfile.TemporaryDirectory() as tmp:
        for clip in CLIPS:
            path = Path(tmp) / f"{clip.name}.mp4"
            encode_clip(clip, args.seconds, path)
            results.append(bench_file(clip.name, path, args.repeats, clip.gop))

    args.out.mkdir(parents=True, exist_ok=True)
    report = {
        "machine": machine_info(),
        "code": code_version(),
        "repeats": args.repeats,
        "sampled_frames": N_SAMPLED,
        "files": results,
    }
    (args.out / "frames.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(results, args.repeats)
    (args.out / "frames.md").write_text("# Frame sampling: 16 frames vs full decode\n\n" + table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
