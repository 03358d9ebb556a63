"""Decoded, resized video frames on disk, so a video is decoded once for every frame count and every model.

Eval reads each video at 16, 32 and 64 frames for base, SFT and RL: nine decodes of a file where sampling 16
frames already decodes most of it (spec section 8). ``FrameCache.warm`` decodes a video once at the union of
the frame indices its rules ask for and stores each rule's resized frames; later reads, in this process or
another stage's, load them.

An entry is keyed by the file (resolved path, size, mtime) and the rules that decide frames and sizes, so a
changed file or rule misses. Entries are written to a temporary file and renamed, so a reader sees a whole
entry or none, whatever other processes do; a hit refreshes the entry's mtime, and the least recently used
entries go when the cache outgrows ``max_bytes``. A damaged entry is a miss, removed, and read again.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
import zipfile
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from .resize import resize_frames
from .rules import MediaRules
from .video import SampledVideo, VideoInfo, probe_video, read_frames, sampling_plan

FRAME_RULES = (
    "fps",
    "min_frames",
    "max_frames",
    "video_min_pixels",
    "video_max_pixels",
    "video_pixel_rule",
    "frame_index_rule",
    "factor",
)
FORMAT = 1  # bump when the entry layout changes
STALE_TMP_S = 3600


class FrameCache:
    def __init__(self, root: str | Path, max_bytes: int):
        self.root = Path(root)
        self.max_bytes = int(max_bytes)
        self.root.mkdir(parents=True, exist_ok=True)

    def entry_path(self, path: str | Path, rules: MediaRules) -> Path:
        path = Path(path).resolve()
        st = os.stat(path)
        key = {
            "format": FORMAT,
            "file": str(path),
            "size": st.st_size,
            "mtime_ns": st.st_mtime_ns,
            "rules": {name: getattr(rules, name) for name in FRAME_RULES},
        }
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:32]
        return self.root / f"{digest}.npz"

    def get(self, path: str | Path, rules: MediaRules) -> SampledVideo | None:
        entry = self.entry_path(path, rules)
        try:
            with np.load(entry, allow_pickle=False) as data:
                frames, meta = data["frames"], json.loads(str(data["meta"]))
            os.utime(entry)  # recently used: evicted last
        except FileNotFoundError:
            return None
        except (
            OSError,
            ValueError,
            KeyError,
            EOFError,
            zipfile.BadZipFile,
        ):  # damaged: drop it and read the video again
            entry.unlink(missing_ok=True)
            return None
        return SampledVideo(torch.from_numpy(frames), meta["sample_fps"], meta["indices"], VideoInfo(**meta["info"]))

    def put(self, path: str | Path, rules: MediaRules, video: SampledVideo) -> None:
        entry = self.entry_path(path, rules)
        meta = json.dumps({"sample_fps": video.sample_fps, "indices": video.indices, "info": asdict(video.info)})
        fd, tmp = tempfile.mkstemp(dir=self.root, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(f, frames=video.frames.numpy(), meta=np.array(meta))
            os.replace(tmp, entry)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.evict()

    def load(self, path: str | Path, rules: MediaRules, *, threads: int = 1) -> SampledVideo:
        """The cached frames, or decode them (once for all of ``rules``' frame rules) and cache them."""
        video = self.get(path, rules)
        if video is None:
            video = self.warm(path, [rules], threads=threads)[0]
        return video

    def warm(self, path: str | Path, rules_list: Sequence[MediaRules], *, threads: int = 1) -> list[SampledVideo]:
        """Every rule's frames of one video, decoding the video at most once: at the union of the indices of the
        rules not cached yet. Raises MediaError as ``read_video`` does."""
        path = Path(path)
        videos: list[SampledVideo | None] = [self.get(path, r) for r in rules_list]
        missing = [i for i, v in enumerate(videos) if v is None]
        if missing:
            info = probe_video(path)
            plans = {
                i: sampling_plan(
                    path,
                    info,
                    fps=r.fps,
                    min_frames=r.min_frames,
                    max_frames=r.max_frames,
                    min_pixels=r.video_min_pixels,
                    max_pixels=r.video_max_pixels,
                    factor=r.factor,
                    pixel_rule=r.video_pixel_rule,
                    index_rule=r.frame_index_rule,
                )
                for i, r in enumerate(rules_list)
                if i in missing
            }
            union = sorted({k for plan in plans.values() for k in plan.indices})
            decoded = read_frames(path, union, threads=threads)
            row = {k: j for j, k in enumerate(union)}
            for i, plan in plans.items():
                frames = resize_frames(decoded[[row[k] for k in plan.indices]], plan.height, plan.width).contiguous()
                videos[i] = SampledVideo(frames, plan.sample_fps, plan.indices, info)
                self.put(path, rules_list[i], videos[i])
        return videos

    def evict(self) -> None:
        """Remove the least recently used entries until the cache fits ``max_bytes``."""
        entries, now = [], time.time()
        for e in os.scandir(self.root):
            if e.name.endswith(".tmp"):  # a writer killed mid-entry; a live one renames its file within seconds
                try:
                    if now - e.stat().st_mtime > STALE_TMP_S:
                        Path(e.path).unlink(missing_ok=True)
                except FileNotFoundError:
                    pass
            elif e.name.endswith(".npz"):
                try:
                    st = e.stat()
                except FileNotFoundError:  # another process evicted it
                    continue
                entries.append((st.st_mtime_ns, st.st_size, e.path))
        total = sum(size for _, size, _ in entries)
        for _, size, name in sorted(entries):
            if total <= self.max_bytes:
                break
            Path(name).unlink(missing_ok=True)
            total -= size

    def size_bytes(self) -> int:
        return sum(p.stat().st_size for p in self.root.glob("*.npz"))
