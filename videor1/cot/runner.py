"""Run a teacher over rows in batches, appending each batch to a resumable store."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence

from ..store import ResultStore
from .teacher import Teacher

ROW_FIELDS = ("problem_id", "problem", "data_type", "problem_type", "options", "solution", "path", "data_source")


def row_key(row: dict) -> str:
    """Identifies a row by id and content, so a changed row is generated again and an unchanged one is not."""
    content = json.dumps({k: row.get(k) for k in ROW_FIELDS}, sort_keys=True, default=str)
    return f"{row['problem_id']}:{hashlib.sha256(content.encode()).hexdigest()[:16]}"


def settled(record: dict | None, max_attempts: int) -> bool:
    """A row is done when it has a completion, failed for a reason of its own, or used up its attempts."""
    return record is not None and (not record.get("retry") or record.get("attempts", 1) >= max_attempts)


def generate_cot(
    rows: Sequence[dict],
    teacher: Teacher,
    store: ResultStore,
    *,
    batch_size: int = 16,
    max_attempts: int = 3,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[list[dict], int]:
    """A record per row, in row order (``row_key``, ``completion`` or ``error``, ``attempts``, ``retry``, teacher
    ``meta``), and how many rows the teacher processed now; the rest were settled in ``store`` already.

    A row the teacher failed on (``retry``) is tried once per run until it has ``max_attempts`` attempts; its newest
    record wins. ``TeacherDied`` propagates: every finished batch is already in ``store``.
    """
    done = store.load()
    keys = [row_key(r) for r in rows]
    if len(set(keys)) != len(keys):
        raise ValueError("rows repeat the same problem_id and content; collect removes duplicates, run it first")
    todo = [(k, r) for k, r in zip(keys, rows) if not settled(done.get(k), max_attempts)]
    if on_progress and len(todo) < len(rows):
        on_progress(len(rows) - len(todo))
    for start in range(0, len(todo), batch_size):
        batch = todo[start : start + batch_size]
        outputs = teacher.complete([r for _, r in batch])
        records = [
            {
                "row_key": k,
                "problem_id": r["problem_id"],
                "completion": out.completion,
                "error": out.error,
                "retry": out.retry,
                "attempts": done.get(k, {}).get("attempts", 0) + 1,
                "meta": out.meta,
            }
            for (k, r), out in zip(batch, outputs)
        ]
        store.append(records)
        done.update((rec["row_key"], rec) for rec in records)
        if on_progress:
            on_progress(len(batch))
    return [done[k] for k in keys], len(todo)
