"""Run a model over one benchmark file: prompts, frames, generation, per-row results written as it goes."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from ..generation import GenerationBackend, GenerationRequest, SamplingConfig, too_long
from ..media import FrameCache, MediaError, MediaRules, load_medium
from ..prompts import TEMPLATES, TYPE_SUFFIX, user_message
from ..store import ResultStore, fingerprint

REQUIRED = ("problem_id", "problem", "data_type", "problem_type", "solution", "path")


@dataclass(frozen=True)
class EvalRun:
    """What one (benchmark, frame count) evaluation needs besides the rows and the backend."""

    media_root: Path
    rules: MediaRules
    sampling: SamplingConfig
    batch_size: int = 8
    media_workers: int = 2
    wording: str = "training"  # the prompt's wording (videor1.prompts.TEMPLATES): the protocol's
    frame_cache: FrameCache | None = None  # decoded frames shared across frame counts and models


def run_fingerprint(run: EvalRun, rows: Sequence[dict], model: dict, backend: str) -> str:
    """Identifies everything that decides an output, so resumed rows are reused only when it matches."""
    return fingerprint({
        "model": model,
        "backend": backend,
        "sampling": asdict(run.sampling),
        "rules": asdict(run.rules),
        "prompt": [TEMPLATES[run.wording], TYPE_SUFFIX],
        "rows": list(rows),
    })


def _check_ids(rows: Sequence[dict]) -> None:
    seen = set()
    for i, row in enumerate(rows):
        pid = row.get("problem_id")
        if pid is None or pid in seen:
            raise ValueError(f"row {i}: problem_id {pid!r} is {'missing' if pid is None else 'repeated'}; "
                             "every row needs a unique problem_id to be resumable")
        seen.add(pid)


def _load(row: dict, run: EvalRun):
    """The row's medium, or the reason it cannot be read."""
    missing = [f for f in REQUIRED if f not in row]
    if missing:
        return None, f"invalid row: missing {', '.join(missing)}"
    path = run.media_root / str(row["path"])
    try:
        return load_medium(path, row["data_type"], run.rules, cache=run.frame_cache), None
    except (MediaError, ValueError) as err:
        return None, str(err)


def evaluate_rows(
    rows: Sequence[dict],
    backend: GenerationBackend,
    run: EvalRun,
    store: ResultStore,
    *,
    on_progress: Callable[[int], None] | None = None,
) -> tuple[list[dict], int]:
    """Results for every row, in row order, and how many were generated now (the rest came from ``store``).

    A result is the row plus ``output`` (the decoded text), ``completion_tokens``,
    ``finished`` and ``num_frames``; a row whose medium cannot be read, or whose
    prompt is longer than the backend takes, gets ``output: None`` and ``error``
    instead. Batches go to ``store`` as they finish.
    """
    _check_ids(rows)
    done = store.load()
    todo = [r for r in rows if r["problem_id"] not in done]
    if on_progress and done:
        on_progress(len(rows) - len(todo))
    batches = [todo[i:i + run.batch_size] for i in range(0, len(todo), run.batch_size)]
    with ThreadPoolExecutor(max(1, run.media_workers)) as pool:
        pending = [pool.submit(_load, r, run) for r in batches[0]] if batches else []
        for b, batch in enumerate(batches):
            loaded = [f.result() for f in pending]
            if b + 1 < len(batches):  # decode the next batch's media while this one generates
                pending = [pool.submit(_load, r, run) for r in batches[b + 1]]
            limit = backend.prompt_limit(run.sampling)
            loaded = [(medium, err or too_long(backend.processor, [user_message(row, run.wording)], medium, limit))
                      for row, (medium, err) in zip(batch, loaded)]  # an over-long prompt: the row's error, not a crash
            ok = [(row, medium) for row, (medium, err) in zip(batch, loaded) if err is None]
            outputs = backend.generate([GenerationRequest([user_message(row, run.wording)], medium) for row, medium in ok],
                                       run.sampling) if ok else []
            generated = {row["problem_id"]: (medium, comps[0]) for (row, medium), comps in zip(ok, outputs)}
            records = []
            for row, (medium, err) in zip(batch, loaded):
                if err is not None:
                    records.append({**row, "output": None, "error": err})
                    continue
                medium, completion = generated[row["problem_id"]]
                records.append({**row, "output": completion.text, "completion_tokens": len(completion.token_ids),
                                "finished": completion.finished, "num_frames": medium.num_frames})
            store.append(records)
            done.update((r["problem_id"], r) for r in records)
            if on_progress:
                on_progress(len(batch))
    return [done[r["problem_id"]] for r in rows], len(todo)
