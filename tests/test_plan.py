"""The memory plan: the 7B's parameter count from its config on the meta device, and the paper profile's fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from videor1.cli import main
from videor1.plan import CONFIGS, ModelShape, plan_memory, profile_runs, video_tokens

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())


@pytest.fixture(scope="module")
def seven_b():
    return ModelShape.from_file(CONFIGS / "qwen2_5_vl_7b.json")


def test_the_7b_architecture_has_8_29b_parameters_with_its_vision_tower(seven_b):
    assert round(seven_b.params / 1e9, 2) == 8.29 and round(seven_b.vision_params / 1e9, 2) == 0.68
    assert (seven_b.hidden, seven_b.layers, seven_b.vocab, seven_b.vision_layers) == (3584, 28, 152064, 32)


def test_paper_video_shapes():
    assert video_tokens(16, 128 * 28 * 28) == (4096, 1024)  # 16 frames at 128·28·28: 1,024 LLM tokens


def test_sharded_terms_scale_with_the_gpu_count_and_checkpointing_cuts_activations(seven_b):
    rl = profile_runs(PARAMS, "paper")["rl"]
    one, eight = plan_memory(seven_b, rl, 1, 80), plan_memory(seven_b, rl, 8, 80)
    for term in ("gradients (fp32)", "AdamW moments (fp32)", "reference model (bf16)"):
        assert eight.terms[term] == pytest.approx(one.terms[term] / 8)
    assert one.terms["AdamW moments (fp32)"] == pytest.approx(8 * seven_b.params / 2**30)
    no_ckpt = plan_memory(seven_b, profile_runs(PARAMS, "paper", gradient_checkpointing=False)["rl"], 8, 80)
    assert no_ckpt.terms["activations, language model"] > 10 * eight.terms["activations, language model"]


def test_the_paper_profile_fits_8x80_and_4x96_but_not_one_gpu(seven_b):
    runs = profile_runs(PARAMS, "paper")
    assert all(plan_memory(seven_b, run, 8, 80).fits for run in runs.values())
    assert all(plan_memory(seven_b, run, 4, 96).fits for run in runs.values())  # the paper's 4 × H20
    assert not any(plan_memory(seven_b, run, 1, 141).fits for run in runs.values())


def test_plan_command(capsys):
    assert main(["plan", "--gpus", "8", "--gpu-gb", "80", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sft"]["fits"] and out["rl"]["fits"] and round(out["params"] / 1e9, 2) == 8.29
    assert main(["plan", "--gpus", "1", "--gpu-gb", "80"]) == 1  # does not fit: exit 1
