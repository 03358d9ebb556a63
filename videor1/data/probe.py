"""Probe every media file once: readable, frame count, fps, size. Cached by (path, size, mtime).

A probe decodes a video's first and last frame and an image fully, so a file
that demuxes but does not decode (truncated, corrupt) fails here rather than
in the middle of training.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import polars as pl

from ..io import atomic_path
from ..media import MediaError, probe_image, probe_video, read_frames


@dataclass(frozen=True)
class Probe:
    path: str  # absolute
    size: int
    mtime_ns: int
    data_type: str
    ok: bool
    reason: str | None = None
    num_frames: int | None = None
    video_fps: float | None = None
    height: int | None = None
    width: int | None = None


def probe_file(path: str, data_type: str) -> Probe:
    """Never raises: a failure is a Probe with ok=False and the reason."""
    try:
        st = os.stat(path)
        size, mtime = st.st_size, st.st_mtime_ns
    except FileNotFoundError:
        return Probe(path, -1, -1, data_type, False, f"{path}: file does not exist")
    except OSError as err:
        return Probe(path, -1, -1, data_type, False, f"{path}: cannot stat ({err.strerror})")
    try:
        if data_type == "video":
            info = probe_video(path)
            read_frames(path, sorted({0, info.total_frames - 1}))
            return Probe(path, size, mtime, data_type, True, None, info.total_frames, info.fps, info.height, info.width)
        info = probe_image(path)
        return Probe(path, size, mtime, data_type, True, None, None, None, info.height, info.width)
    except MediaError as err:
        return Probe(path, size, mtime, data_type, False, str(err))


def _probe_star(args: tuple[str, str]) -> Probe:
    return probe_file(*args)


class ProbeCache:
    """Probes persisted as parquet; an entry counts only while the file's size and mtime are unchanged."""

    def __init__(self, path: str | Path | None):
        self.path = Path(path) if path else None
        self.entries: dict[tuple[str, str], Probe] = {}
        if self.path and self.path.is_file():
            for rec in pl.read_parquet(self.path).iter_rows(named=True):
                probe = Probe(**rec)
                self.entries[(probe.path, probe.data_type)] = probe

    def lookup(self, path: str, data_type: str) -> Probe | None:
        hit = self.entries.get((path, data_type))
        if hit is None:
            return None
        try:
            st = os.stat(path)
        except OSError:
            return None
        return hit if (st.st_size, st.st_mtime_ns) == (hit.size, hit.mtime_ns) else None

    def save(self) -> None:
        if not self.path:
            return
        frame = pl.DataFrame([asdict(p) for p in self.entries.values()], schema=_CACHE_SCHEMA)
        with atomic_path(self.path) as tmp:
            frame.write_parquet(tmp)


_CACHE_SCHEMA = {
    "path": pl.Utf8, "size": pl.Int64, "mtime_ns": pl.Int64, "data_type": pl.Utf8, "ok": pl.Boolean,
    "reason": pl.Utf8, "num_frames": pl.Int64, "video_fps": pl.Float64, "height": pl.Int64, "width": pl.Int64,
}


def probe_all(items: list[tuple[str, str]], cache: ProbeCache, *, workers: int = 1) -> tuple[dict[tuple[str, str], Probe], int]:
    """Probe each distinct (absolute path, data_type); return results and how many were not cached."""
    results: dict[tuple[str, str], Probe] = {}
    todo = []
    for key in dict.fromkeys(items):
        hit = cache.lookup(*key)
        if hit is None:
            todo.append(key)
        else:
            results[key] = hit
    if todo:
        if workers > 1 and len(todo) > 1:
            with ProcessPoolExecutor(max_workers=workers) as pool:
                fresh = list(pool.map(_probe_star, todo, chunksize=max(1, len(todo) // (workers * 8))))
        else:
            fresh = [probe_file(*key) for key in todo]
        for key, probe in zip(todo, fresh):
            results[key] = probe
            cache.entries[key] = probe
        cache.save()
    return results, len(todo)
