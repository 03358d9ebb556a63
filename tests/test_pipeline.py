"""DVC stages in a copy of the project: each stage offline, resume after kill -9, the paper profile's refusals, the
eval backends row by row, the sft stage on two processes against one. Tests start from shared copies with the upstream
stages done (conftest's collected_project and filtered_project), so each pays only for the stages it is about.

The whole pipeline end to end runs in tests/test_orchestration.py, through Prefect, which also checks what
collect, cot and filter write."""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
import yaml

from tests.conftest import REPO, copy_project, kill_when, sh, tree_digest


def _set(project: Path, stage: str, **values) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tiny"][stage].update(values)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_paper_profile_refuses_missing_model_and_data(project):
    sh(project, sys.executable, "-m", "tasks.profile", "paper")
    assert yaml.safe_load((project / "params.yaml").read_text())["profile"] == "paper"
    base = sh(project, sys.executable, "-m", "tasks.base_model", check=False)
    assert base.returncode != 0 and "/data/models/Qwen2.5-VL-7B-Instruct does not exist" in base.stderr
    collect = sh(project, sys.executable, "-m", "tasks.collect", check=False)
    assert collect.returncode != 0 and "/data/video-r1/Video-R1-260k.json does not exist" in collect.stderr


def _complete_lines(directory: Path) -> int:
    return sum(f.read_bytes().count(b"\n") for f in directory.glob("*.jsonl"))


@pytest.mark.slow
def test_killed_eval_resumes_without_regenerating(collected_project, tmp_path):
    """Under the public script's protocol, with one benchmark file missing: killed mid-run, resumed."""
    project = copy_project(collected_project, tmp_path)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tiny"]["eval"]["batch_size"] = 1  # slow enough to be killed midway
    params["tiny"]["eval"]["protocol"] = "reference"
    params["tiny"]["eval"]["protocol_overrides"]["max_new_tokens"] = 48
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (project / "data" / "synth" / "eval_mmvu.json").unlink()  # reported missing; the other five run
    out_dir = project / "data" / "eval" / "base"
    env = {**os.environ, "PYTHONPATH": str(project)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasks.evaluate", "base"],
        cwd=project,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    kill_when(proc, lambda: out_dir.exists() and _complete_lines(out_dir) >= 5, within=120)
    done_before = _complete_lines(out_dir)
    total = 2 * 5 * len(params["tiny"]["eval"]["frames"])
    assert 5 <= done_before < total, "the run was not caught midway"
    before = {f.name: f.read_bytes()[: f.read_bytes().rfind(b"\n") + 1] for f in out_dir.glob("*.jsonl")}

    sh(project, sys.executable, "-m", "tasks.evaluate", "base")
    metrics = json.loads((project / "metrics" / "eval_base.json").read_text())
    run = json.loads((project / "metrics" / "run" / "evaluate@base.json").read_text())  # how the run went
    assert run["generated_now"] == total - done_before
    for name, head in before.items():  # rows written before the kill are kept byte for byte
        assert (out_dir / name).read_bytes().startswith(head)
    assert _complete_lines(out_dir) == total
    # image_min_pixels 3136 is the reference's own 4·28·28: not an override
    assert (
        metrics["protocol"]["label"]
        == "reference, image_max_pixels=9216, max_new_tokens=48, video_max_pixels=4096, video_min_pixels=3136"
    )
    assert metrics["protocol"]["temperature"] == 0.1 and metrics["protocol"]["mra"] == "float32"
    for per in metrics["frames"].values():
        assert "eval_mmvu.json does not exist" in per["mmvu"]["missing"] and per["mvbench"]["rows"] == 2
    first = json.loads((out_dir / "mvbench@4.jsonl").read_text().splitlines()[0])
    assert first["num_frames"] == 4


@pytest.mark.slow
def test_killed_cot_with_the_transformers_teacher_resumes_and_the_vllm_teacher_runs(collected_project, tmp_path):
    project = copy_project(collected_project, tmp_path)
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tiny"]["cot"].update(teacher="transformers", batch_size=1, max_new_tokens=48)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    log = project / "data" / "cot" / "completions.jsonl"
    env = {**os.environ, "PYTHONPATH": str(project)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasks.cot"], cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    kill_when(proc, lambda: log.exists() and log.read_bytes().count(b"\n") >= 4, within=120)
    done_before = log.read_bytes().count(b"\n")
    total = pl.read_parquet(project / "data" / "collected.parquet").height
    assert 4 <= done_before < total, "the run was not caught midway"

    sh(project, sys.executable, "-m", "tasks.cot")
    metrics = json.loads((project / "metrics" / "cot.json").read_text())
    assert json.loads((project / "metrics" / "run" / "cot.json").read_text())["generated_now"] == total - done_before
    assert metrics["completed"] == total and log.read_bytes().count(b"\n") == total

    # the same stage with the vLLM teacher (models/base: a random model writes nonsense), then a filter that
    # finds nothing to keep and stops with counts, not a traceback
    _set(project, "cot", teacher="vllm", max_new_tokens=24, batch_size=16)
    sh(project, sys.executable, "-m", "dvc", "repro", "cot")
    cot = json.loads((project / "metrics" / "cot.json").read_text())
    assert cot["teacher"] == "vllm" and cot["completed"] == cot["rows_in"] == total
    assert json.loads((project / "metrics" / "run" / "cot.json").read_text())["generated_now"] == total
    filtered = sh(project, sys.executable, "-m", "dvc", "repro", "filter", check=False)
    assert filtered.returncode != 0 and "Traceback" not in filtered.stderr
    assert "filter: none of" in filtered.stderr and "nothing to train on" in filtered.stderr


def _set_sft(project: Path, **train) -> None:
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tiny"]["sft"]["train"].update(train)
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


@pytest.mark.slow
def test_repro_sft_trains_and_rl_runs_on_both_rollout_backends(filtered_project, tmp_path):
    """... the eval stage's two backends give the same outputs row by row, and the models are versioned: an
    experiment's model and the baseline's both come back from the cache."""
    project = copy_project(filtered_project, tmp_path)
    for name in (".dvc/config", ".gitignore"):  # the repository's cache links and ignores, as a user's clone has
        shutil.copy(REPO / name, project / name)
    _set_sft(project, max_steps=30, per_device_batch_size=4, save_steps=10)
    sh(project, sys.executable, "-m", "dvc", "repro", "sft")
    metrics = json.loads((project / "metrics" / "sft.json").read_text())
    assert metrics["steps"] == 30 and metrics["skipped_rows"] == 0
    assert metrics["loss_last_window"] < 0.8 * metrics["loss_first_window"], metrics
    curve = (project / "plots" / "sft_loss.csv").read_text().splitlines()
    assert curve[0] == "step,epoch,loss,learning_rate,grad_norm" and len(curve) == 31
    model_dir = project / "models" / "sft"
    assert (model_dir / "model.safetensors").is_file() and (model_dir / "processor_config.json").is_file()

    sh(project, sys.executable, "-m", "dvc", "repro", "rl")
    rl = json.loads((project / "metrics" / "rl.json").read_text())
    assert rl["steps"] == 4 and rl["temporal"] is True and rl["skipped_rows"] == 0
    curve = (project / "plots" / "rl.csv").read_text().splitlines()
    assert curve[0].startswith("step,reward,accuracy,format,temporal_fired") and len(curve) == 5
    assert list((project / "logs" / "rl").glob("events.out.tfevents.*"))  # TensorBoard
    assert (project / "models" / "rl" / "model.safetensors").is_file()

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t"]
    sh(project, *git, "add", "-A")
    sh(project, *git, "commit", "-qm", "baseline")
    baseline = tree_digest(project / "models" / "rl")

    # an experiment: the same rl stage with vLLM rollouts (weights synced every step), then the eval on vLLM
    sh(
        project,
        sys.executable,
        "-m",
        "dvc",
        "exp",
        "run",
        "-n",
        "vllm-rollouts",
        "-S",
        "tiny.rl.rollout_backend=vllm",
        "-S",
        "tiny.eval.backend=vllm",
        "-S",
        "tiny.eval.frames=[4]",
        "evaluate@rl",
    )
    experiment = tree_digest(project / "models" / "rl")
    assert experiment != baseline
    rl = json.loads((project / "metrics" / "rl.json").read_text())
    assert rl["steps"] == 4 and rl["skipped_rows"] == 0
    with (project / "plots" / "rl.csv").open() as fh:
        curve = list(csv.DictReader(fh))
    assert len(curve) == 4 and all(float(r["distinct_completions"]) > 1 for r in curve)
    assert json.loads((project / "metrics" / "eval_rl.json").read_text())["frames"]["4"]["mean"] is not None

    # the same model evaluated by the same stage on the transformers backend: the same rows, in the same order,
    # the same greedy outputs of the same tokens (the eval protocol's top_p 0.001 keeps the top token)
    on_vllm = _eval_rows(project / "data" / "eval" / "rl")
    _set(project, "eval", backend="transformers")
    sh(project, sys.executable, "-m", "tasks.evaluate", "rl")
    on_transformers = _eval_rows(project / "data" / "eval" / "rl")
    assert on_vllm.keys() == on_transformers.keys() and len(on_vllm) == 6  # six benchmarks at 4 frames
    for name, rows in on_vllm.items():
        assert len(rows) == 2 and all(r["output"] is not None for r in rows)
        same = ("problem_id", "num_frames", "output", "completion_tokens", "finished")
        assert [{k: r.get(k) for k in same} for r in on_transformers[name]] == [
            {k: r.get(k) for k in same} for r in rows
        ]

    # the baseline's model comes back byte for byte from the cache, and so does the experiment's
    sh(project, "git", "checkout", "--", ".")
    sh(project, sys.executable, "-m", "dvc", "checkout", "--force", "models/rl")
    assert tree_digest(project / "models" / "rl") == baseline
    sh(project, sys.executable, "-m", "dvc", "exp", "branch", "vllm-rollouts", "vllm-rollouts")
    sh(project, "git", "checkout", "vllm-rollouts", "--", "dvc.lock")
    sh(project, sys.executable, "-m", "dvc", "checkout", "models/rl")
    assert tree_digest(project / "models" / "rl") == experiment
    linked = project / "models" / "rl" / "model.safetensors"
    assert linked.stat().st_nlink > 1 or linked.is_symlink()  # linked from the cache, not copied


def _eval_rows(directory: Path) -> dict[str, list[dict]]:
    """The eval stage's per-row outputs, by benchmark@frames."""
    return {
        f.stem: [json.loads(line) for line in f.read_text().splitlines()] for f in sorted(directory.glob("*.jsonl"))
    }


def _order(log: Path) -> list[list[dict]]:
    """The data-order log split into runs: each run is the list of {step, problem_ids} it processed."""
    runs = []
    for line in log.read_text().splitlines():
        entry = json.loads(line)
        if "start_step" in entry:
            runs.append({"start": entry["start_step"], "batches": []})
        else:
            runs[-1]["batches"].append(entry)
    return runs


SFT_RUN = dict(max_steps=12, per_device_batch_size=2, save_steps=4, save_total_limit=10)  # 18 rows: 9 steps an epoch


@pytest.fixture(scope="module")
def sft_once(filtered_project, tmp_path_factory) -> Path:
    """`python -m tasks.sft` run once, uninterrupted, in one process: what the killed and the two-process runs of
    the same configuration are held to."""
    project = copy_project(filtered_project, tmp_path_factory.mktemp("sft-once"))
    _set_sft(project, **SFT_RUN)
    sh(project, sys.executable, "-m", "tasks.sft")
    return project


@pytest.mark.slow
def test_killed_sft_resumes_with_the_same_steps_and_data_order(filtered_project, sft_once, tmp_path):
    project = copy_project(filtered_project, tmp_path)
    _set_sft(project, **SFT_RUN)
    [uninterrupted] = _order(sft_once / "models" / "sft-checkpoints" / "data_order.jsonl")
    full = json.loads((sft_once / "metrics" / "sft.json").read_text())
    checkpoints = project / "models" / "sft-checkpoints"

    env = {**os.environ, "PYTHONPATH": str(project)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "tasks.sft"], cwd=project, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    kill_when(proc, lambda: (checkpoints / "checkpoint-8" / "trainer_state.json").exists(), within=300)
    assert not (project / "models" / "sft").exists(), "the run finished before it was killed"

    sh(project, sys.executable, "-m", "tasks.sft")
    killed, resumed = _order(checkpoints / "data_order.jsonl")
    assert resumed["start"] >= 8
    replayed = [b for b in killed["batches"] if b["step"] < resumed["start"]] + resumed["batches"]
    assert replayed == uninterrupted["batches"]  # the same batches, in the same order, at the same steps
    metrics = json.loads((project / "metrics" / "sft.json").read_text())
    assert metrics["steps"] == full["steps"] == 12
    assert json.loads((project / "metrics" / "run" / "sft.json").read_text())["resumed_from_step"] == resumed["start"]
    assert metrics["loss_last_window"] == pytest.approx(full["loss_last_window"], rel=1e-4)


def _curve(project: Path) -> list[dict]:
    with (project / "plots" / "sft_loss.csv").open() as fh:
        return list(csv.DictReader(fh))


@pytest.mark.slow
def test_the_sft_stage_on_two_processes_equals_one_process(filtered_project, sft_once, tmp_path):
    """`nproc: 2`: `python -m tasks.sft` relaunches itself under torchrun (DDP over gloo), each process one row of
    the same global batch of 2 the one-process run takes: every step's loss and gradient norm, and the saved model,
    equal the one-process run's (fp32; the numbers below), and rank 0's rows are one of each of its batches."""
    from safetensors.torch import load_file

    project = copy_project(filtered_project, tmp_path)
    _set_sft(project, **{**SFT_RUN, "per_device_batch_size": 1})
    _set(project, "sft", nproc=2)
    sh(project, sys.executable, "-m", "tasks.sft")

    one, two = _curve(sft_once), _curve(project)
    assert [r["step"] for r in two] == [r["step"] for r in one] == [str(s) for s in range(1, 13)]
    for key in ("loss", "grad_norm", "learning_rate"):
        assert [float(r[key]) for r in two] == pytest.approx([float(r[key]) for r in one], rel=1e-5), key
    metrics = [json.loads((p / "metrics" / "sft.json").read_text()) for p in (sft_once, project)]
    assert metrics[0]["steps"] == metrics[1]["steps"] == 12 and metrics[1]["skipped_rows"] == 0
    weights = [load_file(p / "models" / "sft" / "model.safetensors") for p in (sft_once, project)]
    assert weights[0].keys() == weights[1].keys()
    # AdamW moves a weight by about lr (2e-3) a step, 2.4e-2 over the 12: the runs' largest difference is a
    # thousandth of that (summation order over two processes; measured 1.2e-5)
    worst = max(float((weights[1][k] - w).abs().max()) for k, w in weights[0].items())
    assert worst < 5e-5, worst
    [batches] = [run["batches"] for run in _order(sft_once / "models" / "sft-checkpoints" / "data_order.jsonl")]
    [halves] = [run["batches"] for run in _order(project / "models" / "sft-checkpoints" / "data_order.jsonl")]
    assert [h["step"] for h in halves] == [b["step"] for b in batches]
    assert all(
        len(h["problem_ids"]) == 1 and set(h["problem_ids"]) < set(b["problem_ids"]) for h, b in zip(halves, batches)
    )
