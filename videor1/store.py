"""An append-only JSONL of per-row results that survives kill -9 and knows what produced it.

Each finished batch is appended and fsynced, so a killed run loses at most the
batch in flight. A sidecar ``<file>.meta.json`` holds the fingerprint of the
run's configuration (model weights, decoding, frames, prompt, input rows): on
resume, rows are reused only when the fingerprint matches; otherwise the old
file is discarded with a message, never mixed with the new configuration.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable
from pathlib import Path

from .io import append_jsonl, own_copy, write_json


def fingerprint(config: dict) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode()).hexdigest()


class ResultStore:
    def __init__(self, path: str | Path, fingerprint: str, *, key: str = "problem_id"):
        self.path = Path(path)
        self.meta = self.path.with_name(self.path.name + ".meta.json")
        self.fingerprint = fingerprint
        self.key = key

    def load(self) -> dict:
        """Rows already done under this fingerprint, by key. Starts the file afresh on a mismatch."""
        own_copy(self.path)  # a log DVC committed may be a link into its cache: never append through it
        if self.meta.exists() and self.path.exists():
            if json.loads(self.meta.read_text()).get("fingerprint") == self.fingerprint:
                return self._read()
            print(f"{self.path}: configuration changed since these rows were written; starting over")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.path.write_text("")
        write_json(self.meta, {"fingerprint": self.fingerprint})
        return {}

    def _read(self) -> dict:
        done = {}
        good_bytes = 0
        with self.path.open("rb") as fh:
            for line in fh:
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break  # a line torn by a kill: it and anything after it are redone
                if not line.endswith(b"\n"):
                    break
                done[record[self.key]] = record
                good_bytes += len(line)
        if good_bytes != self.path.stat().st_size:
            with self.path.open("r+b") as fh:
                fh.truncate(good_bytes)
        return done

    def append(self, records: Iterable[dict]) -> None:
        append_jsonl(self.path, records)
