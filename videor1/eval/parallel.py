"""Eval on N engines: independent worker processes, one per GPU (on CPU, N processes), sharing the work by batch.

The work is every (benchmark, frames, batch) with a row not done yet, the batches being ``runner.batches``: fixed
by the rows alone. A worker generates a whole batch with one ``generate`` call, exactly as a single process does,
and every sampling seed is a function of the row's place in its batch (transformers: one seeded batch; vLLM:
``seed + i * n`` for request i), never of the process: so each row's output equals a one-process run's, whichever
worker makes it. Workers take batches from the parent one at a time (and one ahead, so the next batch's media
decode while this one generates): a slow GPU takes fewer.

Workers are plain processes (``spawn``), not a torchrun group: they never communicate with each other, so there is
no collective for a dead one to hang, and a vLLM engine (tensor parallel 1 or more) is the only engine of its
process, on the GPUs ``CUDA_VISIBLE_DEVICES`` gives it (``videor1.distributed.gpu_groups``): no external launcher,
no process group to join.

Writing: no two processes ever write one file. The parent alone prepares and merges; worker k appends each batch
(fsynced) to its own part file beside the output, ``<benchmark>@<frames>.jsonl.part-<run>-w<k>``. When the
workers are done (or dead) the parent merges the output and its parts into one file in row order, written to a
temporary file, fsynced and renamed over the output, and only then removes the parts: a kill at any moment leaves
either the old output and the parts, or the merged output (and perhaps parts it already holds). The next run's
parent merges whatever parts it finds before it plans (the output's fingerprint decides, as for one process), so
a kill -9 of a worker, of the parent or of everything resumes with only the missing rows' batches, on any nproc.
O_APPEND to one shared file was the alternative: whole-line appends do not interleave on a local file system,
but a torn line (a write split by a kill) in the middle of other processes' lines would make the resume truncate
their rows, and nothing guarantees that on a network file system.
"""

from __future__ import annotations

import glob
import json
import os
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from ..store import ResultStore
from .runner import EvalRun, batches, run_batches


def check_nproc(value) -> int:
    """``eval.nproc`` as a positive int, or ValueError."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"eval.nproc must be a positive integer (processes, one per GPU), got {value!r}")
    return value


def _complete_records(path: Path, key: str) -> dict:
    """The records of a JSONL file up to its first incomplete or torn line (read only, never truncated)."""
    done = {}
    try:
        with path.open("rb") as fh:
            for line in fh:
                if not line.endswith(b"\n"):
                    break
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    break
                done[record[key]] = record
    except FileNotFoundError:
        pass
    return done


class ShardedStore:
    """One (benchmark, frames) output (``ResultStore``: fingerprint sidecar, fsynced appends) plus the part files
    worker processes append to. ``load`` and ``merge`` are the parent's, called while no worker runs."""

    def __init__(self, path: str | Path, fingerprint: str, *, key: str = "problem_id"):
        self.path = Path(path)
        self.main = ResultStore(self.path, fingerprint, key=key)
        self.fingerprint = fingerprint
        self.key = key

    def part(self, tag: str) -> Path:
        return self.path.with_name(f"{self.path.name}.part-{tag}")

    def parts(self) -> list[Path]:
        return sorted(Path(p) for p in glob.glob(glob.escape(str(self.path)) + ".part-*"))

    def _valid(self) -> bool:
        meta = self.main.meta
        try:
            return self.path.exists() and json.loads(meta.read_text()).get("fingerprint") == self.fingerprint
        except (FileNotFoundError, json.JSONDecodeError):
            return False

    def load(self, rows: Sequence[dict]) -> dict:
        """Rows done under this fingerprint, by key: the output's and any part's a killed run left (merged into the
        output now). On a changed configuration everything starts over, parts included."""
        if not self._valid():
            for part in self.parts():
                part.unlink(missing_ok=True)
        self.main.load()  # a fresh file on a mismatch; a torn last line cut; a DVC-committed link copied
        return self.merge(rows)

    def merge(self, rows: Sequence[dict]) -> dict:
        """Fold the parts into the output, rows in row order (so the file equals a one-process run's byte for
        byte), atomically; then remove the parts. Returns the rows done, by key."""
        parts = self.parts()
        done = _complete_records(self.path, self.key)
        order = list(done)
        for part in parts:
            done.update(_complete_records(part, self.key))
        keys = [r[self.key] for r in rows if r[self.key] in done]
        if parts or keys != order:
            tmp = self.path.with_name(f".{self.path.name}.merge.tmp")
            with tmp.open("w", encoding="utf-8") as fh:
                fh.write("".join(json.dumps(done[k], ensure_ascii=False) + "\n" for k in keys))
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, self.path)  # a new file: never writes through a link into DVC's cache
            fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
            for part in parts:
                part.unlink(missing_ok=True)
        return {k: done[k] for k in keys}


@dataclass(frozen=True)
class Unit:
    """One batch of one (benchmark, frames): ``index`` into ``batches(rows, batch_size)``; ``write``: the positions in
    the batch whose rows are missing (the whole batch is generated; only those are written)."""

    bench: str
    frames: int
    index: int
    write: tuple[int, ...]


@dataclass
class EvalJob:
    """Everything a worker needs (picklable): how to build its engine and the rows, runs and outputs."""

    backend: str
    model_dir: str
    backend_kwargs: dict
    rows: dict[str, list[dict]]  # by benchmark
    runs: dict[int, EvalRun]  # by frame count
    outputs: dict[tuple[str, int], str]  # (benchmark, frames) -> output file
    threads: int = 1
    batch_size: int = 8
    media_workers: int = 2

    def batch(self, unit: Unit) -> list[dict]:
        """``batches(rows, batch_size)[unit.index]``."""
        start = unit.index * self.batch_size
        return list(self.rows[unit.bench][start : start + self.batch_size])


def plan_units(job: EvalJob, done: dict[tuple[str, int], dict]) -> list[Unit]:
    """Every batch with a missing row, in a one-process run's order (benchmark, frames, batch)."""
    units = []
    for bench, rows in job.rows.items():
        for frames in job.runs:
            have = done.get((bench, frames), {})
            for b, batch in enumerate(batches(rows, job.batch_size)):
                missing = tuple(i for i, r in enumerate(batch) if r["problem_id"] not in have)
                if missing:
                    units.append(Unit(bench, frames, b, missing))
    return units


def _worker(job: EvalJob, tag: str, conn, parent: int) -> None:
    """A worker process: build the engine, then ask for batches until there are none, appending each to its own part
    file and reporting it."""
    from ..distributed import die_with_parent

    die_with_parent(parent)  # never an orphan still appending when the next run starts
    import torch

    from ..generation import make_backend

    torch.set_num_threads(max(1, int(job.threads)))
    backend = make_backend(job.backend, job.model_dir, **job.backend_kwargs)
    stores = {key: ResultStore(ShardedStore(path, "").part(tag), "") for key, path in job.outputs.items()}

    def units():
        while True:
            conn.send(("next",))
            unit = conn.recv()
            if unit is None:
                return
            yield unit, job.runs[unit.frames], job.batch(unit)

    for unit, records in run_batches(units(), backend, media_workers=job.media_workers):
        stores[(unit.bench, unit.frames)].append([records[i] for i in unit.write])  # fsynced before it is reported
        conn.send(("done", unit))


@dataclass
class PoolResult:
    failures: list[str]  # one line per worker that did not finish cleanly
    seconds: float


def run_pool(
    job: EvalJob,
    units: Sequence[Unit],
    nproc: int,
    *,
    devices: Sequence[str] | None = None,
    on_done: Callable[[Unit, int], None] | None = None,
    on_start: Callable[[list], None] | None = None,
    together: bool = False,
) -> PoolResult:
    """Run ``units`` on ``nproc`` worker processes (fewer when there are fewer units). ``devices``: each worker's
    ``CUDA_VISIBLE_DEVICES`` (None: leave it). A worker that dies (kill -9, an exception, out of memory) loses the
    batches it held; the others go on with the rest, and the failure is returned, not raised: the caller merges
    what was written, and the next run redoes only what is missing. ``on_done(unit, worker)`` follows each batch
    written; ``on_start`` gets the worker processes. ``together``: no batch is handed out before every worker has
    built its engine and asked (or died), so that each takes part (tests: a fast starter would otherwise take all)."""
    import multiprocessing as mp
    from multiprocessing.connection import wait

    start = time.perf_counter()
    ctx = mp.get_context("spawn")  # a fresh interpreter: no inherited CUDA context, threads or engine state
    tag = f"{os.getpid()}-{time.time_ns()}"  # a new run never appends to the part of a worker still exiting
    queue = deque(units)
    workers: dict = {}
    n = min(nproc, len(queue))
    try:
        for k in range(n):
            ours, theirs = ctx.Pipe()
            env = {} if devices is None else {"CUDA_VISIBLE_DEVICES": devices[k]}
            saved = {key: os.environ.get(key) for key in env}
            os.environ.update(env)  # spawn hands the child this environment: set before CUDA can start in it
            try:
                proc = ctx.Process(
                    target=_worker,
                    args=(job, f"{tag}-w{k}", theirs, os.getpid()),
                    name=f"eval-worker-{k}",
                    daemon=False,
                )
                proc.start()
            finally:
                for key, value in saved.items():
                    os.environ.pop(key, None) if value is None else os.environ.__setitem__(key, value)
            theirs.close()  # the child's end lives only in the child: its death closes the pipe
            workers[ours] = (k, proc)
        if on_start:
            on_start([proc for _, proc in workers.values()])
        failures, asked, waiting = [], set(), deque()

        def serve(conn) -> None:
            unit = queue.popleft() if queue else None
            try:
                conn.send(unit)
            except OSError:  # it died after asking: the batch was never handed over
                if unit is not None:
                    queue.appendleft(unit)

        while workers:
            for conn in wait(list(workers)):
                k, proc = workers[conn]
                try:
                    msg = conn.recv()
                except (EOFError, OSError):  # the worker exited (after every message it sent was read)
                    proc.join()
                    if proc.exitcode != 0:
                        code = proc.exitcode
                        how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                        failures.append(f"worker {k} (pid {proc.pid}) died: {how}")
                    conn.close()
                    del workers[conn]
                    if conn in waiting:
                        waiting.remove(conn)
                    continue
                asked.add(conn)
                if msg[0] == "next":
                    waiting.append(conn)
                elif msg[0] == "done" and on_done:
                    on_done(msg[1], k)
            if not together or asked >= set(workers):
                while waiting:
                    serve(waiting.popleft())
        return PoolResult(failures, time.perf_counter() - start)
    finally:
        for conn, (_, proc) in workers.items():  # only on an error in this process: stop the workers
            proc.kill()
            proc.join()
            conn.close()
