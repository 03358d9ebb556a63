"""The one exception type for media that cannot be used."""

from __future__ import annotations

from pathlib import Path


class MediaError(Exception):
    """A media file could not be read or sampled.

    Every reader raises this (never a decoder's own exception), so callers can
    quarantine the row with ``str(err)``, which names the file and the cause.
    """

    def __init__(self, path: str | Path, cause: str):
        self.path = str(path)
        self.cause = cause
        super().__init__(f"{self.path}: {cause}")
