"""Atomic file and directory writes: a reader never sees half a file, even after kill -9."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary sibling path; on success it replaces ``target`` in one rename.

    Works for a file or a directory. On error the temporary is removed and
    ``target`` keeps its old content.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    staged = tmp / target.name
    try:
        yield staged
        if target.is_dir() and not target.is_symlink():
            old = tmp / (target.name + ".old")
            os.replace(target, old)
        elif target.exists() or target.is_symlink():
            target.unlink()
        os.replace(staged, target)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def own_copy(path: str | Path) -> None:
    """Make ``path`` a private file before it is written in place (appended to, truncated).

    DVC links cached outputs into the workspace (a hard or symbolic link to a read-only file of its cache,
    .dvc/config ``cache.type``); writing through such a link would change the cache's copy, and as root
    the read-only bit does not stop it. A resumable log that DVC has committed is therefore copied first.
    """
    path = Path(path)
    if path.is_symlink() or (path.is_file() and path.stat().st_nlink > 1):
        with atomic_path(path) as tmp:
            shutil.copyfile(path, tmp)  # follows a symbolic link: the content, as a new file
            tmp.chmod(0o644)


def write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(target: str | Path, obj, *, indent: int | None = 2) -> None:
    write_text(target, json.dumps(obj, indent=indent, ensure_ascii=False, sort_keys=False) + "\n")


def append_jsonl(target: str | Path, records) -> None:
    """Append records as JSON lines and fsync: a kill -9 loses at most the line being written, which the readers
    of these logs (resume, ``truncate_log``) drop. Never appends through a link into DVC's cache (``own_copy``)."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    own_copy(target)
    data = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    with target.open("a", encoding="utf-8") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def write_jsonl(target: str | Path, rows) -> None:
    with atomic_path(target) as tmp, tmp.open("w", encoding="utf-8") as fh:
        for row in rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")


RUN_RECORDS = Path("metrics/run")


def write_run_record(name: str, record: dict, root: str | Path = RUN_RECORDS) -> Path:
    """How a stage's run went (seconds, throughput, memory, what it resumed or took from a cache) to
    ``metrics/run/<name>.json``: never one of the stage's outputs, which the same inputs must reproduce byte for
    byte on every run. No stage reads these; dvc.yaml lists the folder under its top-level ``metrics``, so
    ``dvc metrics show`` shows them beside the results."""
    path = Path(root) / f"{name}.json"
    write_json(path, record)
    return path
