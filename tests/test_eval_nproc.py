"""Eval on N worker processes (eval.nproc): outputs equal a one-process run's row by row (byte for byte, the files
themselves), a kill -9 of one worker resumes with only the missing batches, and the store's parts merge safely.

The model is the tiny one with weights redrawn at unit fan-in scale (as tests/test_vllm.py does: a 0.02-std random
model writes nearly the same tokens for every prompt), and decoding samples at temperature 1 (top_p 1), so every
row's tokens depend on its own inputs, its batch's seed and its place in the batch: a row generated in another
batch, or with a per-process seed, would differ."""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from videor1.distributed import gpu_groups
from videor1.eval import EvalRun, evaluate_rows, run_fingerprint
from videor1.eval.parallel import EvalJob, ShardedStore, check_nproc, plan_units, run_pool
from videor1.eval.protocol import resolve_protocol
from videor1.eval.suite import warm_frames
from videor1.generation import SamplingConfig, make_backend
from videor1.media import FrameCache
from videor1.models import load_model, load_processor, model_signature, save_model_dir

from .conftest import redraw

BENCHES = ["mvbench", "tempcompass", "videommmu"]  # 4 rows each in synth_data; videommmu has images
FRAMES = [4, 8]
BATCH = 3  # 4 rows: a full batch and a part-full one per (benchmark, frames): 12 batches
SAMPLING = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=12, seed=3)
PROTOCOL = resolve_protocol(
    "spec", {"video_min_pixels": 3136, "video_max_pixels": 3136, "image_min_pixels": 3136, "image_max_pixels": 7056}
)


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory):
    model = load_model(tiny_model_dir)
    redraw(model, seed=1)
    target = tmp_path_factory.mktemp("models") / "sharp"
    save_model_dir(model, load_processor(tiny_model_dir), target)
    return target


def setup(synth_data, model_dir, out, *, nproc: int):
    """The stage's pieces for BENCHES × FRAMES into ``out``: the job, the stores, the frame cache."""
    cache = FrameCache(out / "frames", 2**30)
    warm = tuple(PROTOCOL.rules(f) for f in FRAMES) if nproc > 1 else ()
    runs = {
        f: EvalRun(
            media_root=synth_data,
            rules=PROTOCOL.rules(f),
            sampling=SAMPLING,
            batch_size=BATCH,
            media_workers=1,
            wording=PROTOCOL.wording,
            frame_cache=cache,
            warm_rules=warm,
        )
        for f in FRAMES
    }
    rows = {b: json.loads((synth_data / f"eval_{b}.json").read_text()) for b in BENCHES}
    signature = model_signature(model_dir)
    stores = {
        (b, f): ShardedStore(
            out / "eval" / f"{b}@{f}.jsonl", run_fingerprint(runs[f], rows[b], signature, "transformers")
        )
        for b in BENCHES
        for f in FRAMES
    }
    job = EvalJob(
        backend="transformers",
        model_dir=str(model_dir),
        backend_kwargs={"batch_size": BATCH},
        rows=rows,
        runs=runs,
        outputs={k: str(s.path) for k, s in stores.items()},
        batch_size=BATCH,
        media_workers=1,
    )
    return job, stores, cache


def run_n(job, stores, nproc, **kw):
    done = {k: s.load(job.rows[k[0]]) for k, s in stores.items()}
    units = plan_units(job, done)
    pool = run_pool(job, units, nproc, **kw)
    merged = {k: s.merge(job.rows[k[0]]) for k, s in stores.items()}
    return pool, units, merged


def outputs(out) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted((out / "eval").iterdir())}


def run_one(job, stores, backend, cache=None) -> int:
    """The stage's one-process path: parts a killed N-process run left merged in, evaluate_rows per (benchmark,
    frames) in process, the output rewritten in row order. Returns the rows generated."""
    generated = 0
    for bench, rows in job.rows.items():
        if cache is not None:
            warm_frames(cache, rows, job.runs[FRAMES[0]].media_root, [PROTOCOL.rules(f) for f in FRAMES], 1)
        for frames in FRAMES:
            store = stores[(bench, frames)]
            store.load(rows)
            generated += evaluate_rows(rows, backend, job.runs[frames], store.main)[1]
            store.merge(rows)
    return generated


@pytest.fixture(scope="module")
def backend(model_dir):
    return make_backend("transformers", str(model_dir), batch_size=BATCH)


@pytest.fixture(scope="module")
def reference(synth_data, model_dir, backend, tmp_path_factory):
    """An uninterrupted one-process run (its up-front warm of the frame cache included)."""
    out = tmp_path_factory.mktemp("one")
    job, stores, cache = setup(synth_data, model_dir, out, nproc=1)
    assert run_one(job, stores, backend, cache) == 24
    files = outputs(out)
    texts = [
        json.loads(line)["output"]
        for name, data in files.items()
        if name.endswith(".jsonl")
        for line in data.splitlines()
    ]
    assert len(texts) == 24 and len(set(texts)) > 12, "sampled outputs should differ row to row"
    return files


def test_two_processes_write_what_one_writes(reference, synth_data, model_dir, tmp_path):
    job, stores, _ = setup(synth_data, model_dir, tmp_path, nproc=2)
    by_worker, env = {0: 0, 1: 0}, []

    def started(procs):  # each worker's CUDA_VISIBLE_DEVICES, as the GPU path sets it (a CPU torch ignores it)
        for proc in procs:
            # /proc shows a process's environment as its exec received it: until the spawned child has exec'd
            # Python, it shows the parent's start-up environment, so read again until the exec is done
            deadline, found = time.monotonic() + 30, None
            while found is None and time.monotonic() < deadline:
                entries = open(f"/proc/{proc.pid}/environ", "rb").read().split(b"\0")
                found = next((e for e in entries if e.startswith(b"CUDA_VISIBLE_DEVICES=")), None)
                if found is None:
                    time.sleep(0.01)
            env.append(found)

    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    pool, units, merged = run_n(
        job,
        stores,
        2,
        together=True,
        devices=["6,7", "GPU-b"],
        on_start=started,
        on_done=lambda u, k: by_worker.__setitem__(k, by_worker[k] + 1),
    )
    assert pool.failures == [] and len(units) == 12 and sum(by_worker.values()) == 12 and min(by_worker.values()) > 0
    assert env == [b"CUDA_VISIBLE_DEVICES=6,7", b"CUDA_VISIBLE_DEVICES=GPU-b"]
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == before  # the stage's own environment is left as it was
    assert outputs(tmp_path) == reference  # every file, byte for byte
    assert not list((tmp_path / "eval").glob("*.part-*"))  # merged and removed
    again, units, _ = run_n(job, stores, 2)  # nothing left to do: no worker starts
    assert units == [] and again.failures == [] and outputs(tmp_path) == reference


def test_a_worker_killed_mid_run_resumes_with_only_the_missing_batches(
    reference, synth_data, model_dir, backend, tmp_path
):
    job, stores, _ = setup(synth_data, model_dir, tmp_path, nproc=2)
    procs, killed = [], []

    def kill_second(unit, worker):  # worker 1 dies after its first batch, holding the next one
        if worker == 1 and not killed:
            os.kill(procs[1].pid, signal.SIGKILL)
            killed.append(unit)

    pool, units, merged = run_n(job, stores, 2, on_start=procs.extend, on_done=kill_second, together=True)
    assert len(pool.failures) == 1 and "worker 1" in pool.failures[0] and "signal 9" in pool.failures[0]
    have = sum(len(d) for d in merged.values())
    assert 0 < have < 24, "the kill did not land mid-run"
    for bench, frames in merged:  # what is there is a one-process run's rows, in row order
        lines = (tmp_path / "eval" / f"{bench}@{frames}.jsonl").read_bytes().splitlines(keepends=True)
        assert set(lines) <= set(reference[f"{bench}@{frames}.jsonl"].splitlines(keepends=True))
    assert not list((tmp_path / "eval").glob("*.part-*"))

    # resumed here by the one-process path (the same plan as N processes: any nproc resumes any other's run)
    assert run_one(job, stores, backend) == 24 - have  # only the missing rows
    assert outputs(tmp_path) == reference


def test_parts_merge_in_row_order_torn_lines_dropped_and_a_new_configuration_discards_them(tmp_path):
    rows = [{"problem_id": i} for i in range(5)]
    path = tmp_path / "b@4.jsonl"
    store = ShardedStore(path, "fp-1")
    assert store.load(rows) == {}
    line = lambda i: json.dumps({"problem_id": i, "output": f"o{i}"}) + "\n"  # noqa: E731
    path.write_text(line(3))
    store.part("r-w0").write_text(line(1) + line(4) + '{"problem_id": 0, "out')  # torn by a kill
    store.part("r-w1").write_text(line(2))
    assert list(store.load(rows)) == [1, 2, 3, 4]
    assert path.read_text() == line(1) + line(2) + line(3) + line(4) and store.parts() == []
    store.part("r-w0").write_text(line(0))
    assert list(ShardedStore(path, "fp-2").load(rows)) == []  # changed configuration: output and parts start over
    assert path.read_text() == "" and store.parts() == []


def test_gpu_groups_take_the_visible_gpus_in_order(monkeypatch):
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "3,5,7,9,GPU-x")
    assert gpu_groups(2, 2) == ["3,5", "7,9"] and gpu_groups(5) == ["3", "5", "7", "9", "GPU-x"]
    with pytest.raises(ValueError, match="need 6 GPUs; 5 visible"):
        gpu_groups(3, 2)


def test_nproc_is_checked_before_any_work(tmp_path, monkeypatch):
    assert check_nproc(1) == 1 and check_nproc(8) == 8
    for bad in (0, -2, 1.5, "2", True, None):
        with pytest.raises(ValueError, match="eval.nproc must be a positive integer"):
            check_nproc(bad)
    from tasks import evaluate

    monkeypatch.chdir(tmp_path)  # no model, no data: the check must come first
    (tmp_path / "params.yaml").write_text("profile: tiny\ntiny:\n  eval:\n    nproc: 0\n")
    with pytest.raises(SystemExit, match=r"params.yaml: tiny.eval.nproc: must be >= 1 \(got 0\)"):
        evaluate.main(["base"])
