"""Video probing and exact frame reading with PyAV (FFmpeg).

Frame *i* means the i-th frame a full sequential decode outputs. Containers and
some decoders disagree with that: an MP4 cut with ``ffmpeg -c copy`` carries an
edit list whose hidden frames the container still counts, and decord returns
wrong frames on such files. So the frame table comes from demuxing (no
decoding): every packet with a timestamp and without FFmpeg's discard flag is one
output frame, and frame i is the i-th smallest presentation timestamp. Reading
seeks to a keyframe only when the next wanted frame lies beyond the keyframe
group being decoded, and checks each frame's timestamp; any inconsistency falls
back to a sequential decode, which is correct by definition.
"""

from __future__ import annotations

import bisect
import os
from dataclasses import dataclass
from pathlib import Path

import av
import numpy as np
import torch

from .errors import MediaError
from .resize import resize_frames
from .sampling import frame_indices, frame_indices_float32, qwen_vl_utils_max_pixels, smart_nframes, smart_resize


@dataclass(frozen=True)
class VideoInfo:
    """What a probe learns about a video without decoding it."""

    total_frames: int
    fps: float
    height: int
    width: int
    codec: str

    @property
    def duration_s(self) -> float:
        return self.total_frames / self.fps


@dataclass(frozen=True)
class SampledVideo:
    """Frames chosen by the spec-section-5 rules, ready for the processor."""

    frames: torch.Tensor  # uint8, T x C x H x W
    sample_fps: float  # frames per second of video time among the sampled frames
    indices: list[int]
    info: VideoInfo


@dataclass(frozen=True)
class _FrameTable:
    pts: list[int]  # presentation timestamps, ascending; frame i has pts[i]
    keyframe_pts: list[int]  # ascending
    exact: bool  # False when timestamps are missing or repeated: only a sequential decode is safe


def _open(path: Path, threads: int = 1) -> av.container.InputContainer:
    if not path.is_file():
        raise MediaError(path, "file does not exist")
    if path.stat().st_size == 0:
        raise MediaError(path, "file is empty (0 bytes)")
    try:
        container = av.open(str(path), mode="r")
    except (av.error.FFmpegError, UnicodeDecodeError, ValueError) as err:
        raise MediaError(path, f"not a readable media container ({err})") from err
    if not container.streams.video:
        container.close()
        raise MediaError(path, "no video stream")
    container.streams.video[0].thread_count = threads  # must be set before the codec opens
    return container


def _frame_table(container: av.container.InputContainer, path: Path) -> _FrameTable:
    stream = container.streams.video[0]
    pts: list[int] = []
    keyframes: list[int] = []
    exact = True
    try:
        for packet in container.demux(stream):
            if packet.size == 0 or packet.is_discard:  # flush packet, or hidden by an edit list
                continue
            if packet.pts is None:
                exact = False
                pts.append(len(pts))
                continue
            pts.append(packet.pts)
            if packet.is_keyframe:
                keyframes.append(packet.pts)
    except av.error.FFmpegError as err:
        raise MediaError(path, f"demuxing failed after {len(pts)} frames ({err})") from err
    pts.sort()
    keyframes.sort()
    if len(set(pts)) != len(pts) or not keyframes:
        exact = False
    return _FrameTable(pts, keyframes, exact)


def _stream_fps(stream: av.video.stream.VideoStream) -> float:
    rate = stream.average_rate or stream.guessed_rate or stream.base_rate
    return float(rate) if rate else 0.0


def _info(container: av.container.InputContainer, table: _FrameTable, path: Path) -> VideoInfo:
    stream = container.streams.video[0]
    fps = _stream_fps(stream)
    if not table.pts:
        raise MediaError(path, "video stream has no frames")
    if fps <= 0:
        raise MediaError(path, "video stream reports no frame rate")
    ctx = stream.codec_context
    if not ctx.height or not ctx.width:
        raise MediaError(path, "video stream reports no frame size")
    return VideoInfo(len(table.pts), fps, ctx.height, ctx.width, ctx.name)


def probe_video(path: str | Path) -> VideoInfo:
    """Frame count (as a full decode would output), fps and size, from a demux pass."""
    path = Path(path)
    container = _open(path)
    try:
        return _info(container, _frame_table(container, path), path)
    finally:
        container.close()


def _to_array(frame: av.VideoFrame) -> np.ndarray:
    return frame.to_ndarray(format="rgb24")


def _decode_sequential(container, path: Path, wanted: set[int] | None) -> dict[int, np.ndarray]:
    """Decode from the start; keep frames whose output index is in ``wanted`` (all if None)."""
    container.seek(0)
    stream = container.streams.video[0]
    out: dict[int, np.ndarray] = {}
    last = max(wanted) if wanted else None
    try:
        for i, frame in enumerate(container.decode(stream)):
            if wanted is None or i in wanted:
                out[i] = _to_array(frame)
            if last is not None and i >= last:
                break
    except av.error.FFmpegError as err:
        raise MediaError(path, f"decoding failed after {len(out)} frames ({err})") from err
    return out


def _decode_seeking(container, table: _FrameTable, indices: list[int]) -> dict[int, np.ndarray] | None:
    """Decode only the keyframe groups that hold wanted frames. None means 'not trustworthy here'."""
    stream = container.streams.video[0]
    by_pts = {table.pts[i]: i for i in indices}
    out: dict[int, np.ndarray] = {}
    frames = None
    group_end = None  # first keyframe pts after the group being decoded
    for target in sorted(by_pts):
        k = bisect.bisect_right(table.keyframe_pts, target) - 1
        if k < 0:
            return None
        if frames is None or (group_end is not None and target >= group_end):
            container.seek(table.keyframe_pts[k], stream=stream, backward=True, any_frame=False)
            frames = container.decode(stream)
        group_end = table.keyframe_pts[k + 1] if k + 1 < len(table.keyframe_pts) else None
        for frame in frames:
            if frame.pts is None:
                return None
            if frame.pts == target:
                out[by_pts[target]] = _to_array(frame)
                break
            if frame.pts > target:
                return None
        else:
            return None
    return out


def read_frames(path: str | Path, indices: list[int] | None = None, *, threads: int = 1) -> torch.Tensor:
    """Frames at the given output indices (all frames if None), uint8 T x C x H x W, in the order asked."""
    path = Path(path)
    container = _open(path, threads)
    try:
        table = _frame_table(container, path)
        total = len(table.pts)
        if indices is None:
            indices = list(range(total))
        if not indices:
            raise MediaError(path, "no frame indices requested")
        bad = [i for i in indices if not 0 <= i < total]
        if bad:
            raise MediaError(path, f"frame indices {bad[:5]} out of range for {total} frames")
        wanted = sorted(set(indices))
        got = None
        if table.exact:
            try:
                got = _decode_seeking(container, table, wanted)
            except av.error.FFmpegError:
                got = None
        if got is None or len(got) != len(wanted):
            got = _decode_sequential(container, path, set(wanted))
        missing = [i for i in wanted if i not in got]
        if missing:
            raise MediaError(path, f"frames {missing[:5]} could not be decoded (file truncated or corrupt?)")
    finally:
        container.close()
    return torch.from_numpy(np.stack([got[i] for i in indices])).permute(0, 3, 1, 2).contiguous()


def decode_all_frames(path: str | Path, *, threads: int = 1) -> torch.Tensor:
    """Every frame by one sequential decode: the reference that the fast path must equal."""
    path = Path(path)
    container = _open(path, threads)
    try:
        got = _decode_sequential(container, path, None)
    finally:
        container.close()
    if not got:
        raise MediaError(path, "video stream has no decodable frames")
    return torch.from_numpy(np.stack([got[i] for i in range(len(got))])).permute(0, 3, 1, 2).contiguous()


def read_video(
    path: str | Path,
    *,
    fps: float = 2.0,
    min_frames: int = 4,
    max_frames: int = 16,
    min_pixels: int,
    max_pixels: int,
    factor: int = 28,
    threads: int = 1,
    pixel_rule: str = "bounds",
    index_rule: str = "exact",
) -> SampledVideo:
    """Sample, decode and resize a video exactly as spec section 5 (qwen-vl-utils) prescribes."""
    path = Path(path)
    info = probe_video(path)
    plan = sampling_plan(
        path,
        info,
        fps=fps,
        min_frames=min_frames,
        max_frames=max_frames,
        min_pixels=min_pixels,
        max_pixels=max_pixels,
        factor=factor,
        pixel_rule=pixel_rule,
        index_rule=index_rule,
    )
    frames = resize_frames(read_frames(path, plan.indices, threads=threads), plan.height, plan.width)
    return SampledVideo(frames, plan.sample_fps, plan.indices, info)


@dataclass(frozen=True)
class SamplingPlan:
    """Which frames a video's rules take, and the size they are resized to, before any decoding."""

    indices: list[int]
    height: int
    width: int
    sample_fps: float


def sampling_plan(
    path: Path,
    info: VideoInfo,
    *,
    fps: float,
    min_frames: int,
    max_frames: int,
    min_pixels: int,
    max_pixels: int,
    factor: int = 28,
    pixel_rule: str = "bounds",
    index_rule: str = "exact",
) -> SamplingPlan:
    try:
        n = smart_nframes(info.total_frames, info.fps, fps=fps, min_frames=min_frames, max_frames=max_frames)
        if pixel_rule == "qwen_vl_utils":
            max_pixels = qwen_vl_utils_max_pixels(min_pixels, max_pixels, n, factor=factor)
        height, width = smart_resize(
            info.height, info.width, factor=factor, min_pixels=min_pixels, max_pixels=max_pixels
        )
    except ValueError as err:
        raise MediaError(path, str(err)) from err
    indices = (frame_indices_float32 if index_rule == "float32" else frame_indices)(info.total_frames, n)
    return SamplingPlan(indices, height, width, n / info.total_frames * info.fps)


def file_signature(path: str | Path) -> tuple[int, int]:
    """(size, mtime_ns): what a probe cache keys on besides the path."""
    st = os.stat(path)
    return st.st_size, st.st_mtime_ns
