"""Run a model over one benchmark file: prompts, frames, generation, per-row results written as it goes."""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

from ..generation import GenerationBackend, GenerationRequest, SamplingConfig, too_long
from ..media import FrameCache, MediaError, MediaRules, Medium, load_medium
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
    # with a frame cache: on a miss, decode the video once for all these rules (every frame count of the stage)
    # and cache each, as the stage's up-front warm does; how frames are cached, never what they are
    warm_rules: tuple[MediaRules, ...] = ()


def run_fingerprint(run: EvalRun, rows: Sequence[dict], model: dict, backend: str) -> str:
    """Identifies everything that decides an output, so resumed rows are reused only when it matches."""
    return fingerprint(
        {
            "model": model,
            "backend": backend,
            "sampling": asdict(run.sampling),
            "rules": asdict(run.rules),
            "prompt": [TEMPLATES[run.wording], TYPE_SUFFIX],
            "rows": list(rows),
        }
    )


def _check_ids(rows: Sequence[dict]) -> None:
    seen = set()
    for i, row in enumerate(rows):
        pid = row.get("problem_id")
        if pid is None or pid in seen:
            raise ValueError(
                f"row {i}: problem_id {pid!r} is {'missing' if pid is None else 'repeated'}; "
                "every row needs a unique problem_id to be resumable"
            )
        seen.add(pid)


def _load(row: dict, run: EvalRun):
    """The row's medium, or the reason it cannot be read."""
    missing = [f for f in REQUIRED if f not in row]
    if missing:
        return None, f"invalid row: missing {', '.join(missing)}"
    path = run.media_root / str(row["path"])
    try:
        if row["data_type"] == "video" and run.frame_cache is not None and run.warm_rules:
            video = run.frame_cache.get(path, run.rules)
            if video is None:  # decoded once for every frame count: whoever needs the video first warms them all
                video = run.frame_cache.warm(path, [run.rules, *(r for r in run.warm_rules if r != run.rules)])[0]
            return Medium("video", video=video), None
        return load_medium(path, row["data_type"], run.rules, cache=run.frame_cache), None
    except (MediaError, ValueError, OSError) as err:
        return None, str(err)


def batches(rows: Sequence[dict], batch_size: int) -> list[list[dict]]:
    """The rows cut into batches of ``batch_size``, in row order. Fixed by the rows alone, never by which rows are
    done: a row is always generated beside the same rows (left padding and batched kernels change the arithmetic,
    so its output may depend on them), whichever process or resumed run generates it."""
    return [list(rows[i : i + batch_size]) for i in range(0, len(rows), batch_size)]


def generate_batch(
    batch: Sequence[dict], loaded: Sequence[tuple[Medium | None, str | None]], backend: GenerationBackend, run: EvalRun
) -> list[dict]:
    """One record per row of ``batch`` (``loaded``: each row's medium or error), in batch order: the rows that can
    be generated go to the backend in one call, in batch order."""
    limit = backend.prompt_limit(run.sampling)
    loaded = [
        (medium, err or too_long(backend.processor, [user_message(row, run.wording)], medium, limit))
        for row, (medium, err) in zip(batch, loaded)
    ]  # an over-long prompt: the row's error, not a crash
    ok = [(row, medium) for row, (medium, err) in zip(batch, loaded) if err is None]
    outputs = (
        backend.generate(
            [GenerationRequest([user_message(row, run.wording)], medium) for row, medium in ok], run.sampling
        )
        if ok
        else []
    )
    generated = {row["problem_id"]: (medium, comps[0]) for (row, medium), comps in zip(ok, outputs)}
    records = []
    for row, (medium, err) in zip(batch, loaded):
        if err is not None:
            records.append({**row, "output": None, "error": err})
            continue
        medium, completion = generated[row["problem_id"]]
        records.append(
            {
                **row,
                "output": completion.text,
                "completion_tokens": len(completion.token_ids),
                "finished": completion.finished,
                "num_frames": medium.num_frames,
            }
        )
    return records


def run_batches(
    jobs: Iterable[tuple[Hashable, EvalRun, Sequence[dict]]], backend: GenerationBackend, *, media_workers: int = 2
) -> Iterator[tuple[Hashable, list[dict]]]:
    """``(key, records)`` for each ``(key, run, batch)`` job, in order, decoding the next job's media while this one
    generates. Jobs are read one ahead: the next is taken before this one's records are handed on."""
    it = iter(jobs)
    with ThreadPoolExecutor(max(1, media_workers)) as pool:

        def submit(job) -> list[Future]:
            return [] if job is None else [pool.submit(_load, r, job[1]) for r in job[2]]

        job = next(it, None)
        pending = submit(job)
        while job is not None:
            loaded = [f.result() for f in pending]
            following = next(it, None)
            pending = submit(following)
            key, run, batch = job
            yield key, generate_batch(batch, loaded, backend, run)
            job = following


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
    instead. Batches go to ``store`` as they finish. Rows are batched by ``batches`` (fixed by the rows, not by
    what is done), so a resumed run generates every row beside the rows an uninterrupted one would: a batch with
    any row missing (a kill loses the batch in flight; a torn write can leave part of one) is generated whole and
    only its missing rows are written.
    """
    _check_ids(rows)
    done = store.load()
    if on_progress and done:
        on_progress(sum(r["problem_id"] in done for r in rows))
    todo = [
        (b, run, batch)
        for b, batch in enumerate(batches(rows, run.batch_size))
        if any(r["problem_id"] not in done for r in batch)
    ]  # a batch a torn write left partial: whole again
    generated = 0
    for _, records in run_batches(todo, backend, media_workers=run.media_workers):
        new = [r for r in records if r["problem_id"] not in done]  # rows already stored are not written twice
        store.append(new)
        done.update((r["problem_id"], r) for r in new)
        generated += len(new)
        if on_progress:
            on_progress(len(new))
    return [done[r["problem_id"]] for r in rows], generated
