"""The memory plan: the 7B's parameter count from its config on the meta device, and the paper profile's fit."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
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
    # checkpointing runs G whole sequences (no cache in training), and still keeps 7× less
    assert no_ckpt.terms["activations, language model"] > 5 * eight.terms["activations, language model"]


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


@pytest.fixture(scope="module")
def measured_setup(tiny_model_dir, synth_data):
    """The tiny model, a 16-frame video prompt at 4 × 56 × 56 pixels, G = 4 completions of uneven length."""
    from videor1.media import MediaRules, load_medium
    from videor1.models import build_processor, load_processor
    from videor1.rl.rollout import prompt_inputs

    pixels = 4 * 56 * 56
    rules = MediaRules(max_frames=16, video_min_pixels=pixels, video_max_pixels=pixels, image_min_pixels=3136,
                       image_max_pixels=7056)
    processor = build_processor(load_processor(tiny_model_dir).tokenizer, image_min_pixels=3136, image_max_pixels=7056,
                                video_min_pixels=pixels, video_max_pixels=pixels)
    row = next(r for r in json.loads((synth_data / "train.json").read_text()) if r["data_type"] == "video")
    row = {**row, "media_root": str(synth_data)}
    prompt = prompt_inputs(processor, row, load_medium(synth_data / row["path"], "video", rules))
    return processor, rules, row, prompt


def _peak_and_plan(tiny_model_dir, setup, stage: str, checkpointing: bool) -> tuple[float, float]:
    import copy
    import tempfile

    from videor1.distributed import init_world
    from videor1.generation import Completion
    from videor1.models import load_model
    from videor1.plan import PeakTensorMemory, RunShape
    from videor1.rl import RLConfig, RLTrainer
    from videor1.rl.rollout import Group

    processor, rules, row, prompt = setup
    model = load_model(tiny_model_dir)
    if checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    prompt_tokens, patches = prompt["input_ids"].shape[1], prompt["pixel_values_videos"].shape[0]
    g, length = 4, 256
    if stage == "rl":
        ref = copy.deepcopy(model).requires_grad_(False)
        completions = [Completion("", [5 + j] * (length - (0, 3, length // 2, 7)[j]), False) for j in range(g)]
        group = Group(row, prompt, completions, [], None)
        cfg = RLConfig(steps=2, learning_rate=1e-3, compute_dtype="float32", beta=0.04, num_generations=g)
        held = [t for m in (model, ref) for t in [*m.parameters(), *m.buffers()]]
        with tempfile.TemporaryDirectory() as tmp:
            trainer = RLTrainer(model, ref, processor, None, [], rules, cfg, tmp, log=lambda _: None, world=init_world())
            with PeakTensorMemory(held) as memory:
                for _ in range(2):  # the second step holds AdamW's moments
                    trainer.update([group], [torch.tensor([1.0, -0.5, 0.5, 0.25])])
        run = RunShape("rl", prompt_tokens=prompt_tokens, completion_tokens=length, completions=g,
                       vision_patches=patches, gradient_checkpointing=checkpointing, sharding="none", compute_bytes=4)
    else:  # an SFT step as the Trainer takes it: the loss of the whole sequence, backward, AdamW
        inputs = dict(prompt)
        inputs["labels"] = inputs["input_ids"].clone()
        optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
        model.train()
        with PeakTensorMemory([*model.parameters(), *model.buffers()]) as memory:
            for _ in range(2):
                optimizer.zero_grad(set_to_none=True)
                model(**inputs).loss.backward()
                optimizer.step()
        run = RunShape("sft", prompt_tokens=prompt_tokens, vision_patches=patches,
                       gradient_checkpointing=checkpointing, sharding="none", compute_bytes=4)
    planned = plan_memory(ModelShape.from_config(model.config), run, 1, 1.0, context_bytes=0)
    return memory.peak / 2**30, planned.total_gb


@pytest.mark.parametrize("stage,checkpointing", [("rl", False), ("rl", True), ("sft", False), ("sft", True)])
def test_the_plan_predicts_the_tiny_models_measured_peak_on_cpu(tiny_model_dir, measured_setup, stage, checkpointing):
    """Every tensor an fp32 step on this CPU allocates, counted until freed, against the plan's terms for the same
    shapes: the plan is a sum of terms, so a little above the measured peak, never far below it."""
    measured, planned = _peak_and_plan(tiny_model_dir, measured_setup, stage, checkpointing)
    print(f"{stage} checkpointing={checkpointing}: plan {planned * 1024:.1f} MiB, measured {measured * 1024:.1f} MiB")
    assert 0.9 * measured <= planned <= 1.3 * measured, f"plan {planned * 1024:.1f} MiB, measured {measured * 1024:.1f} MiB"


def test_the_gpu_step_benchmark_runs_at_toy_size_on_this_cpu(tmp_path):
    """``bench/gpu_step.py`` is the check a lent GPU runs once; at toy widths it runs here, so it stays working."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run([sys.executable, str(repo / "bench" / "gpu_step.py"), "--tiny", "--steps", "1", "--out", str(tmp_path / "step")],
                         capture_output=True, text=True, timeout=300, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads((tmp_path / "step.json").read_text())
    assert record["device"] == "cpu" and set(record["results"]) == {"rl", "sft"}
    for stage, r in record["results"].items():
        assert r["seconds"] > 0 and r["peak_gib"] > 0, stage
        assert r["executed_tflop"] > r["model_tflop"] > 0, stage  # checkpointing recomputes the forward
        assert 0.9 <= r["plan_over_measured"] <= 1.3, stage
    assert (tmp_path / "step.md").read_text().startswith("# One RL and one SFT step")
