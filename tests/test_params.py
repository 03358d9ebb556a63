"""Every stage builds its typed config (videor1/params/) before any work, and a bad knob stops it in one line naming
the file, the key path and the reason, with nothing written. The stages' mains run in this process on a params.yaml
in a temporary directory (one subprocess shows the exit status and the bare line on stderr)."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tasks import base_model, collect, cot, eval_report, evaluate, filter, rl, sft, synth
from videor1.params import ConfigError, ParamsFile, RLParams, result_params, start_stage
from videor1.params.check import build

from .conftest import REPO

PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())
MAINS = {
    "synth": synth.main,
    "base_model": base_model.main,
    "collect": collect.main,
    "cot": cot.main,
    "filter": filter.main,
    "sft": sft.main,
    "rl": lambda: rl.main([]),
    "eval": lambda: evaluate.main(["base"]),
    "eval_report": eval_report.main,
}
LABELS = {"eval": "evaluate", "eval_report": "eval report"}  # how each stage names itself


def write_params(where: Path, edits: dict, base: dict = PARAMS) -> Path:
    """params.yaml with ``{"tiny.rl.train.seed": 1, ...}`` set (a key path's missing sections are made)."""
    params = copy.deepcopy(base)
    for path, value in edits.items():
        *parents, last = path.split(".")
        node = params
        for part in parents:
            node = node.setdefault(part, {})
        node[last] = value
    out = where / "params.yaml"
    out.write_text(yaml.safe_dump(params, sort_keys=False))
    return out


def refusal(stage: str, edits: dict, where: Path, monkeypatch) -> str:
    """The stage's main on the edited params: its exit message, after checking that it wrote nothing."""
    monkeypatch.chdir(where)
    write_params(where, edits)
    before = sorted(where.rglob("*"))
    with pytest.raises(SystemExit) as stop:
        MAINS[stage]()
    assert sorted(where.rglob("*")) == before, "the stage wrote something before refusing"
    message = str(stop.value.code)
    assert "\n" not in message
    return message


def assert_refused(message: str, stage: str, key: str, reason: str, source: str = "params.yaml") -> None:
    assert message.startswith(f"{LABELS.get(stage, stage)}: {source}: {key}: "), message
    assert reason in message, message


# The edits of issue 24 (a new user's typos and slips), each once silently ignored or a traceback, some only after
# the first rollout had been paid for: (stage, edits, the key named, the reason).
ISSUE_EDITS = [
    ("eval", {"tiny.eval.temprature": 0.5}, "tiny.eval.temprature", "did you mean `protocol_overrides.temperature`?"),
    ("sft", {"tiny.sft.learning_rat": "1e-4"}, "tiny.sft.learning_rat", "did you mean `train.learning_rate`?"),
    ("collect", {"tiny.collect.sourcs": []}, "tiny.collect.sourcs", "did you mean `sources`?"),
    ("eval", {"tiny.eval.frames": [0]}, "tiny.eval.frames[0]", "must be >= 2 (got 0)"),
    ("rl", {"tiny.rl.train.num_generations": 1}, "tiny.rl.train.num_generations", "must be >= 2 (got 1)"),
    ("sft", {"tiny.sft.nproc": 0}, "tiny.sft.nproc", "must be >= 1 (got 0)"),
    ("rl", {"tiny.rl.rollout_backend": "vlm"}, "tiny.rl.rollout_backend", "(got 'vlm'); did you mean `vllm`?"),
    ("rl", {"tiny.rl.train.loss_aggregation": "mean"}, "tiny.rl.train.loss_aggregation", "sequence, token, dr_grpo"),
    ("eval", {"tiny.eval.backend": "hf"}, "tiny.eval.backend", "must be one of transformers, vllm (got 'hf')"),
    ("cot", {"tiny.cot.max_new_tokens": "512"}, "tiny.cot.max_new_tokens", "must be a whole number, got '512'"),
    ("rl", {"tiny.rl.train.kl_coef": 0.1}, "tiny.rl.train.kl_coef", "unknown knob"),  # once RLConfig's TypeError
    ("cot", {"tiny.cot.max_model_len": "8k"}, "tiny.cot.max_model_len", "must be a whole number"),  # once str - int
    ("cot", {"tiny.cot.teacher": "gpt4"}, "tiny.cot.teacher", "must be one of scripted, transformers, vllm"),
    ("rl", {"tiny.rl.train.temporal": "no"}, "tiny.rl.train.temporal", "must be true or false, got 'no'"),
    ("eval", {"tiny.eval.nproc": 1.5}, "tiny.eval.nproc", "must be a whole number, got 1.5"),
]


@pytest.mark.parametrize("stage, edits, key, reason", ISSUE_EDITS, ids=[next(iter(e[1])) for e in ISSUE_EDITS])
def test_the_issues_edits_are_refused_before_any_work(stage, edits, key, reason, tmp_path, monkeypatch):
    assert_refused(refusal(stage, edits, tmp_path, monkeypatch), stage, key, reason)


# Each class of error on each stage: unknown key (with the nearest name), type, range, choice, a rule across knobs.
STAGE_EDITS = [
    ("synth", {"tiny.synth.sed": 1}, "tiny.synth.sed", "did you mean `seed`?"),
    ("synth", {"tiny.synth.train_video_rows": "many"}, "tiny.synth.train_video_rows", "must be a whole number"),
    ("synth", {"tiny.synth.spec.states": 1}, "tiny.synth.spec.states", "must be >= 2 (got 1)"),
    (
        "synth",
        {"tiny.synth.eval_sets": {"order": {"families": ["motion_directon"]}}},
        "tiny.synth.eval_sets.order.families",
        "did you mean `motion_direction`?",
    ),
    ("base_model", {"tiny.base_model.model.hiden_size": 64}, "tiny.base_model.model.hiden_size", "`hidden_size`"),
    ("base_model", {"tiny.base_model.seed": "0"}, "tiny.base_model.seed", "must be a whole number, got '0'"),
    ("base_model", {"tiny.base_model.threads": 0}, "tiny.base_model.threads", "must be >= 1 (got 0)"),
    ("base_model", {"tiny.base_model.kind": "hub"}, "tiny.base_model.kind", "must be one of tiny, local"),
    (
        "base_model",
        {"tiny.base_model.family": "qwen3"},
        "tiny.base_model.family",
        "must be one of qwen2_5_vl, qwen3_vl, qwen3_5",
    ),
    (
        "base_model",
        {"tiny.base_model.model.vision_deepstack_indexes": [2]},
        "tiny.base_model.model.vision_deepstack_indexes",
        "must lie in [0, vision_depth), got [2]",
    ),
    (
        "base_model",
        {"tiny.base_model.model.num_key_value_heads": 3},
        "tiny.base_model.model.num_key_value_heads",
        "must divide num_attention_heads (4), got 3",
    ),
    ("collect", {"tiny.collect.workers": 2.5}, "tiny.collect.workers", "must be a whole number, got 2.5"),
    ("collect", {"tiny.collect.default_weight": 1.5}, "tiny.collect.default_weight", "must be in [0.0, 1.0]"),
    ("collect", {"tiny.collect.media.frame_index_rule": "float"}, "tiny.collect.media.frame_index_rule", "`float32`"),
    (
        "collect",
        {"tiny.collect.media.video_max_pixels": 784},
        "tiny.collect.media.video_max_pixels",
        "must be >= video_min_pixels (3136), got 784",
    ),
    ("cot", {"tiny.cot.top_p": 1.5}, "tiny.cot.top_p", "must be in [0.0, 1.0] (got 1.5)"),
    ("cot", {"tiny.cot.scripted.spoil.loopng": 0.1}, "tiny.cot.scripted.spoil.loopng", "did you mean `looping`?"),
    ("cot", {"tiny.cot.max_model_len": 512}, "tiny.cot.max_model_len", "must exceed max_new_tokens (512)"),
    ("filter", {"tiny.filter.min_word": 5}, "tiny.filter.min_word", "did you mean `min_words`?"),
    ("filter", {"tiny.filter.check_format": "yes"}, "tiny.filter.check_format", "must be true or false"),
    ("filter", {"tiny.filter.min_accuracy": 60}, "tiny.filter.min_accuracy", "must be in [0.0, 1.0] (got 60)"),
    ("filter", {"tiny.filter.max_words": 5}, "tiny.filter.max_words", "must be >= min_words (10), got 5"),
    ("sft", {"tiny.sft.train.learning_rate": "abc"}, "tiny.sft.train.learning_rate", "must be a number, got 'abc'"),
    ("sft", {"tiny.sft.train.lr_scheduler": "cosin"}, "tiny.sft.train.lr_scheduler", "did you mean `cosine`?"),
    ("sft", {"tiny.sft.train.deepspeed": "zero4"}, "tiny.sft.train.deepspeed", "must be one of zero2, zero3"),
    ("sft", {"tiny.sft.model_dtype": "bfloat16"}, "tiny.sft.model_dtype", "without DeepSpeed would train bfloat16"),
    ("rl", {"tiny.rl.train.num_generation": 4}, "tiny.rl.train.num_generation", "did you mean `num_generations`?"),
    ("rl", {"tiny.rl.train.top_p": 0}, "tiny.rl.train.top_p", "must be > 0 (got 0)"),
    (
        "rl",
        {"tiny.rl.nproc": 2, "tiny.rl.train.prompts_per_step": 3},
        "tiny.rl.train.prompts_per_step",
        "must be a multiple of nproc (2)",
    ),
    ("rl", {"tiny.rl.vllm_sleep": True}, "tiny.rl.vllm_sleep", "true needs rollout_backend: vllm"),
    ("rl", {"tiny.rl.train.len_max": 10}, "tiny.rl.train.len_max", "must be >= len_min (40), got 10"),
    ("eval", {"tiny.eval.batch_size": "16"}, "tiny.eval.batch_size", "must be a whole number, got '16'"),
    ("eval", {"tiny.eval.protocol": "papr"}, "tiny.eval.protocol", "did you mean `paper`?"),
    (
        "eval",
        {"tiny.eval.protocol_overrides.max_new_token": 64},
        "tiny.eval.protocol_overrides.max_new_token",
        "did you mean `max_new_tokens`?",
    ),
    (
        "eval",
        {"tiny.eval.backend": "vllm", "tiny.eval.max_model_len": 100},
        "tiny.eval.max_model_len",
        "must exceed the protocol's max_new_tokens (128), got 100",
    ),
    ("eval_report", {"tiny.eval_report.note": []}, "tiny.eval_report.note", "did you mean `notes`?"),
    ("eval_report", {"tiny.eval_report.paper_frames": {4: "16"}}, "tiny.eval_report.paper_frames.4", "whole number"),
    ("eval_report", {"eval_models": ["base", "base"]}, "eval_models", "repeat a name"),
]


@pytest.mark.parametrize("stage, edits, key, reason", STAGE_EDITS, ids=[next(iter(e[1])) for e in STAGE_EDITS])
def test_each_class_of_error_is_refused_on_each_stage(stage, edits, key, reason, tmp_path, monkeypatch):
    assert_refused(refusal(stage, edits, tmp_path, monkeypatch), stage, key, reason)


def test_a_typo_in_the_profile_or_a_section_name_is_refused(tmp_path, monkeypatch):
    message = refusal("filter", {"profile": "tin"}, tmp_path, monkeypatch)
    assert (
        message
        == "filter: params.yaml: profile: must name a profile of this file (tiny, paper, paper_qwen3_vl); did you mean `tiny`?"
    )
    edits = {"tiny.evaluate": {}}
    assert_refused(refusal("synth", edits, tmp_path, monkeypatch), "synth", "tiny.evaluate", "unknown section")


def test_the_model_upstream_bounds_the_lengths(tmp_path, monkeypatch):
    """Rules against the model a stage reads: its config.json's max_position_embeddings, read at the stage's start."""
    for model in ("base", "sft"):
        (tmp_path / "models" / model).mkdir(parents=True)
        config = {"text_config": {"max_position_embeddings": 1024}}
        (tmp_path / "models" / model / "config.json").write_text(json.dumps(config))
    message = refusal("rl", {}, tmp_path, monkeypatch)
    assert_refused(message, "rl", "tiny.rl.train.max_prompt_length", "(2048 + 128) must be <= the model's")
    assert "max_position_embeddings (1024) (models/sft/config.json)" in message
    message = refusal("sft", {"tiny.sft.max_length": 2048}, tmp_path, monkeypatch)
    assert_refused(message, "sft", "tiny.sft.max_length", "must be <= the model's max_position_embeddings (1024)")
    message = refusal("eval", {"tiny.eval.backend": "vllm"}, tmp_path, monkeypatch)
    assert_refused(message, "eval", "tiny.eval.max_model_len", "(1024), got 4096")


def test_an_override_is_checked_as_the_file_and_names_itself(tmp_path, monkeypatch):
    """`python -m tasks.rl --set ...` (toy/dvc.yaml): values read as YAML, the file untouched, the override named."""
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, {})
    cfg = ParamsFile.read().section("rl", ["train.seed=2", "train.temporal=false", "train.learning_rate=1e-4"])
    assert (cfg.train.seed, cfg.train.temporal, cfg.train.learning_rate) == (2, False, 1e-4)
    assert ParamsFile.read().section("rl").train.seed == 0
    for argv, key, reason in [
        (["--set", "train.num_generations=1"], "tiny.rl.train.num_generations", "must be >= 2 (got 1)"),
        (["--set", "train.sed=1"], "tiny.rl.train.sed", "did you mean `seed`?"),
        (["--set", "policy.x=1"], "tiny.rl.policy", "is a knob, not a section"),
    ]:
        with pytest.raises(SystemExit) as stop:
            rl.main(argv)
        assert_refused(str(stop.value.code), "rl", key, reason, source=f"params.yaml with --set {argv[1]}")
    with pytest.raises(SystemExit, match="--set train.seed: an override must be KEY=VALUE"):
        rl.main(["--set", "train.seed"])
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]


def test_the_rollout_engines_node_knobs(tmp_path, monkeypatch):
    """The checks tasks/rl.py once made by hand (node_knob_error): in the file, or, for what only this machine can
    tell, at the stage's start."""
    monkeypatch.chdir(tmp_path)
    vllm = {"tiny.rl.rollout_backend": "vllm"}
    for edits, key, reason in [
        ({"tiny.rl.vllm_sleep": "yes"}, "vllm_sleep", "must be true or false, got 'yes'"),
        ({"tiny.rl.max_model_len": 0}, "max_model_len", "must be >= 1 (got 0)"),
        ({"tiny.rl.train.sync_bucket_mb": -1}, "train.sync_bucket_mb", "must be >= 0 (got -1)"),
        (
            {"tiny.rl.attn_implementation": "flash"},
            "attn_implementation",
            "sdpa, eager, flash_attention_2 (got 'flash')",
        ),
        ({"tiny.rl.tensor_parallel_size": 2}, "tensor_parallel_size", "each rank runs its own engine"),
        ({"tiny.rl.gpu_memory_utilization": 1.5}, "gpu_memory_utilization", "must be in (0, 1]"),
    ]:
        write_params(tmp_path, {**vllm, **edits})
        with pytest.raises(ConfigError) as err:
            start_stage("rl")
        assert str(err.value).startswith(f"params.yaml: tiny.rl.{key}: ") and reason in str(err.value)
    import torch
    from transformers.utils import is_flash_attn_2_available

    if not torch.cuda.is_available():  # the file is fine; this machine cannot run it
        write_params(tmp_path, {**vllm, "tiny.rl.vllm_sleep": True})
        ParamsFile.read().section("rl")
        with pytest.raises(ConfigError, match="tiny.rl.vllm_sleep: true needs vLLM's CUDA build"):
            start_stage("rl")
    if not is_flash_attn_2_available():
        write_params(tmp_path, {"tiny.rl.attn_implementation": "flash_attention_2"})
        with pytest.raises(ConfigError, match="attn_implementation: flash_attention_2 needs the flash-attn package"):
            start_stage("rl")


def test_types_follow_one_rule():
    """bool is true/false only; int a whole number; float any number or YAML 1.1's unread exponent form."""
    from videor1.rl.config import RLConfig

    assert build(RLConfig, {"learning_rate": "1e-4"}).learning_rate == 1e-4  # PyYAML reads 1e-4 as a string
    assert build(RLConfig, {"learning_rate": "5.0E+3"}).learning_rate == 5e3
    assert build(RLConfig, {"learning_rate": 1}).learning_rate == 1
    for knob, value, reason in [
        ("learning_rate", "abc", "must be a number, got 'abc'"),
        ("learning_rate", "0.001", "must be a number"),  # a quoted number is a string, not the exponent case
        ("learning_rate", float("nan"), "must be a finite number"),
        ("learning_rate", True, "must be a number"),
        ("temporal", 1, "must be true or false, got 1"),
        ("steps", True, "must be a whole number, got True"),
        ("steps", 3.0, "must be a whole number, got 3.0"),
        ("top_k", "off", "must be a whole number or null, got 'off'"),
    ]:
        with pytest.raises(ConfigError) as err:
            build(RLConfig, {knob: value}, "train")
        assert str(err.value) == f"train.{knob}: {reason}" or reason in str(err.value), err.value


@pytest.mark.parametrize(
    "path, profiles", [("params.yaml", ["tiny", "paper", "paper_qwen3_vl"]), ("toy/params.yaml", ["toy"])]
)
def test_every_profile_validates_cleanly(path, profiles):
    """Every section of every profile builds (the paper profile's model and data need not exist here: a stage
    checks its inputs when it starts), as do the toy report's inputs and the orchestration section."""
    params = ParamsFile.read(REPO / path)
    for profile in profiles:
        for stage in params.sections(profile):
            params.section(stage, profile=profile)
    if path.startswith("toy"):
        toy = params.section("toy_report")
        assert set(toy.experiment.runs) == {f"{m}-{s}" for m in ("tgrpo", "grpo") for s in range(3)}
        assert toy.frames == [8, 16] and toy.train.steps == 200
    else:
        assert params.orchestration().retries == 1
        assert params.section("eval_report").models == ("base", "sft", "rl")


def test_the_toy_experiments_runs_are_checked_as_the_rl_config_they_train_with(tmp_path):
    toy = yaml.safe_load((REPO / "toy" / "params.yaml").read_text())
    toy["experiment"]["followup"]["tgrpo_a1-0"]["alpha"] = -1.0
    path = tmp_path / "params.yaml"
    path.write_text(yaml.safe_dump(toy))
    with pytest.raises(ConfigError, match=r"params.yaml: experiment.followup.tgrpo_a1-0.alpha: must be >= 0"):
        ParamsFile.read(path).section("toy_report")
    toy["experiment"]["followup"]["tgrpo_a1-0"]["alpha"] = 1.0
    toy["experiment"]["runs"]["grpo-0"] = {"temporal": False, "sed": 0}
    path.write_text(yaml.safe_dump(toy))
    with pytest.raises(ConfigError, match=r"experiment.runs.grpo-0.sed: unknown knob; did you mean `seed`\?"):
        ParamsFile.read(path).section("toy_report")


def test_orchestration_is_checked_for_the_flows(tmp_path):
    path = write_params(tmp_path, {"orchestration.retrys": 2})
    with pytest.raises(ConfigError, match=r"orchestration.retrys: unknown knob; did you mean `retries`\?"):
        ParamsFile.read(path).orchestration()
    path = write_params(tmp_path, {"orchestration.retries": -1})
    with pytest.raises(ConfigError, match=r"orchestration.retries: must be >= 0 \(got -1\)"):
        ParamsFile.read(path).orchestration()


def test_run_fingerprints_ignore_run_only_knobs():
    """Run-only knobs (threads, save intervals, workers) leave a run's fingerprint alone, so a changed one resumes
    from the checkpoints; a knob that changes what is computed does not."""
    a = build(RLParams, {"threads": 1, "train": {"learning_rate": 1e-3, "save_steps": 10, "sample_dump_steps": 5}})
    b = build(RLParams, {"threads": 4, "train": {"learning_rate": 1e-3, "save_steps": 100, "sample_dump_steps": 0}})
    c = build(RLParams, {"threads": 1, "train": {"learning_rate": 2e-3, "save_steps": 10, "sample_dump_steps": 5}})
    assert result_params(a) == result_params(b) != result_params(c)
    assert "threads" not in result_params(a) and "save_steps" not in result_params(a)["train"]
    assert result_params(a)["media"]["fps"] == 2.0 and result_params(a)["train"]["learning_rate"] == 1e-3


def test_a_refusing_stage_exits_non_zero_with_one_line_and_no_traceback(tmp_path):
    write_params(tmp_path, {})
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    run = subprocess.run(
        [sys.executable, "-m", "tasks.rl", "--set", "train.num_generations=1"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 1 and run.stdout == ""
    assert run.stderr == (
        "rl: params.yaml with --set train.num_generations=1: tiny.rl.train.num_generations: must be >= 2 (got 1)\n"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["params.yaml"]
