"""The memory plan: the 7B's parameter count from its config on the meta device, the phases of an RL run on a node
(start-up, rollout, train step, weight sync), and the paper profile's fit."""

from __future__ import annotations

import copy
import dataclasses
import json
from pathlib import Path

import pytest
import torch
import yaml

from videor1.cli import main
from videor1.plan import CONFIGS, GIB, ModelShape, plan_memory, profile_runs, video_tokens

PARAMS = yaml.safe_load((Path(__file__).resolve().parents[1] / "params.yaml").read_text())
CONFIG_7B = json.loads((CONFIGS / "qwen2_5_vl_7b.json").read_text())


@pytest.fixture(scope="module")
def seven_b():
    return ModelShape.from_file(CONFIGS / "qwen2_5_vl_7b.json")


def test_the_7b_architecture_has_8_29b_parameters_with_its_vision_tower(seven_b):
    assert round(seven_b.params / 1e9, 2) == 8.29 and round(seven_b.vision_params / 1e9, 2) == 0.68
    assert (seven_b.hidden, seven_b.layers, seven_b.vocab, seven_b.vision_layers) == (3584, 28, 152064, 32)


def test_the_qwen3_vl_8b_architecture_has_8_77b_parameters_and_16_pixel_patches():
    """Qwen3-VL-8B-Instruct's published size (8.77B) from its architecture; its DeepStack mergers are vision
    parameters outside the tower's blocks (FSDP's root unit)."""
    eight_b = ModelShape.from_file(CONFIGS / "qwen3_vl_8b.json")
    assert round(eight_b.params / 1e9, 2) == 8.77 and round(eight_b.vision_params / 1e9, 2) == 0.58
    assert (eight_b.hidden, eight_b.layers, eight_b.vocab, eight_b.vision_layers, eight_b.patch) == (
        4096,
        36,
        151936,
        27,
        16,
    )


def test_the_qwen3_vl_profile_plans_the_papers_recipe_on_8x80(capsys):
    """`videor1 plan --profile paper_qwen3_vl`: Qwen3-VL-8B (the profile's family picks the architecture) with the
    paper's knobs and 128 tokens per temporal patch at 32 px: both stages fit 8 × 80 GiB."""
    rl = profile_runs(PARAMS, "paper_qwen3_vl", patch=16)["rl"]
    assert rl.vision_patches == video_tokens(16, 128 * 32 * 32, patch=16)[0] == 4096  # the paper's 1,024 tokens
    assert main(["plan", "--profile", "paper_qwen3_vl", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert round(out["params"] / 1e9, 2) == 8.77 and out["sft"]["fits"] and out["rl"]["fits"]


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


def test_the_profile_knobs_reach_the_rl_run_shape():
    rl = profile_runs(PARAMS, "paper")["rl"]
    knobs = PARAMS["paper"]["rl"]
    assert (
        knobs["rollout_backend"] == "vllm" and knobs["vllm_sleep"] is True and knobs["train"]["gradient_checkpointing"]
    )
    assert (rl.vllm_share, rl.vllm_sleep, rl.sync_bucket_mb, rl.max_model_len, rl.gradient_checkpointing) == (
        knobs["gpu_memory_utilization"],
        True,
        1024,
        4096,
        True,
    )
    assert (rl.prompts_per_step, rl.completions, rl.temporal, rl.checkpoint_bytes) == (8, 8, True, 2)  # SFT saves bf16
    other = copy.deepcopy(PARAMS)
    other["paper"]["rl"].update(rollout_backend="transformers", vllm_sleep=True)
    other["paper"]["rl"]["train"]["gradient_checkpointing"] = False
    off = profile_runs(other, "paper")["rl"]
    assert (off.vllm_share, off.vllm_sleep, off.gradient_checkpointing) == (
        0.0,
        False,
        False,
    )  # no engine, nothing to sleep


def test_the_7b_root_unit_is_every_parameter_outside_the_layers_and_blocks(seven_b):
    """FSDP's root unit, by hand from the config: embed_tokens and lm_head (untied), the vision patch embedding,
    the merger (its norm and two linears) and the final norm."""
    vision = CONFIG_7B["vision_config"]
    h, v = CONFIG_7B["hidden_size"], CONFIG_7B["vocab_size"]
    assert not CONFIG_7B["tie_word_embeddings"]
    vh, merged = vision["hidden_size"], vision["hidden_size"] * vision["spatial_merge_size"] ** 2
    patch_embed = 3 * vision["temporal_patch_size"] * vision["patch_size"] ** 2 * vh
    merger = vh + (merged * merged + merged) + (merged * vision["out_hidden_size"] + vision["out_hidden_size"])
    by_hand = 2 * v * h + patch_embed + merger + h
    assert seven_b.root_params == pytest.approx(by_hand, rel=0.01)
    assert round(seven_b.root_params / 1e9, 2) == 1.14  # 1.09B of it embed_tokens + lm_head
    assert seven_b.largest_tensor_params == seven_b.lm_head_params == v * h == 152064 * 3584
    train = plan_memory(seven_b, profile_runs(PARAMS, "paper")["rl"], 8, 80).phases["train step"]
    assert train["FSDP root unit (bf16, unsharded)"] == pytest.approx(2 * seven_b.root_params / GIB)  # 2.1 GiB
    assert train["lm_head gradient (bf16, unsharded)"] == pytest.approx(2 * v * h / GIB)
    # alone, nothing is sharded: no root unit to count
    alone = plan_memory(seven_b, dataclasses.replace(profile_runs(PARAMS, "paper")["rl"], sharding="none"), 1, 141)
    assert not any("root unit" in term for term in alone.terms)


def test_the_start_up_peak_per_gpu_is_shards_and_one_tensor_never_a_replica(seven_b):
    """Meta-device build, FSDP2 sharding, rank 0 broadcasting one full tensor at a time: per GPU the fp32 policy
    shard, the bf16 reference shard and the largest tensor in the checkpoint's bf16; one host copy, on rank 0."""
    p = seven_b.params
    plan = plan_memory(seven_b, profile_runs(PARAMS, "paper")["rl"], 8, 80)
    start = plan.totals["start-up"]
    assert start == pytest.approx((4 * p / 8 + 2 * p / 8 + 2 * 152064 * 3584 + 2 * GIB) / GIB)  # 8.8 GiB
    assert start < 4 * p / GIB  # less than one fp32 replica (30.9 GiB), which the old start-up held on every GPU
    assert plan.host_gb["start-up, rank 0 (the checkpoint)"] == pytest.approx(2 * p / GIB)  # 15.4 GiB, bf16
    assert plan.host_gb["start-up, each other rank"] == 0
    assert start < min(plan.totals[phase] for phase in ("rollout", "train step", "weight sync (streamed)"))


def test_the_streamed_weight_sync_holds_one_bucket_not_the_whole_model(seven_b):
    plan = plan_memory(seven_b, profile_runs(PARAMS, "paper")["rl"], 8, 80)
    streamed, full = plan.phases["weight sync (streamed)"], plan.comparison["weight sync (full gather)"]
    in_flight = streamed["sync bucket (bf16, 1024 MiB)"] + streamed["largest tensor (bf16, gathered)"]
    assert in_flight == pytest.approx(1 + 2 * 152064 * 3584 / GIB)  # 2.0 GiB
    assert full["all parameters gathered (fp32)"] == pytest.approx(4 * seven_b.params / GIB)  # 30.9 GiB
    assert in_flight < full["all parameters gathered (fp32)"] / 10
    # the sync comes after optimizer.step(): gradients, AdamW and the engine's woken bf16 weights are all there
    for term in ("gradients (fp32)", "AdamW moments (fp32)", "vLLM weights (bf16, woken for the sync)"):
        assert streamed[term] == full[term]
    assert streamed["vLLM weights (bf16, woken for the sync)"] == pytest.approx(2 * seven_b.params / GIB)
    saved = plan.totals["weight sync (full gather)"] - plan.totals["weight sync (streamed)"]
    assert saved == pytest.approx(30.9 - 2.0, abs=0.1)
    assert "weight sync (full gather)" not in plan.phases  # shown for comparison, never the peak


def test_sleep_mode_takes_the_vllm_share_off_the_train_step(seven_b):
    rl = profile_runs(PARAMS, "paper")["rl"]
    asleep, awake = (plan_memory(seven_b, dataclasses.replace(rl, vllm_sleep=s), 8, 80) for s in (True, False))
    share = rl.vllm_share * 80  # 28 GiB
    assert awake.totals["train step"] - asleep.totals["train step"] == pytest.approx(share)
    assert awake.totals["rollout"] == asleep.totals["rollout"]  # sampling: the whole share either way
    # the sync: its bf16 weights (15.4 GiB) instead of the whole share
    assert awake.totals["weight sync (streamed)"] - asleep.totals["weight sync (streamed)"] == pytest.approx(
        share - 2 * seven_b.params / GIB
    )
    assert "vLLM (gpu_memory_utilization)" not in asleep.terms and "vLLM (gpu_memory_utilization)" in awake.terms
    assert asleep.host_gb["vLLM asleep, weights of 8 engines (node)"] == pytest.approx(8 * 2 * seven_b.params / GIB)


def test_the_paper_profile_fits_8x80_with_a_margin_the_old_settings_did_not_leave(seven_b):
    rl = profile_runs(PARAMS, "paper")["rl"]
    plan = plan_memory(seven_b, rl, 8, 80)
    assert plan.fits and plan.vllm_fits and plan.peak_phase == "rollout"  # the train step: 35.9 GiB
    assert plan.total_gb == max(plan.totals[name] for name in plan.phases)
    assert plan.margin_gb == pytest.approx(0.98 * 80 - plan.total_gb) and plan.margin_gb > 25  # 31.0 GiB
    h20 = plan_memory(seven_b, rl, 4, 96)
    assert h20.fits and h20.peak_phase == "rollout" and h20.margin_gb > 15  # 23.7 GiB
    # the profile before: vLLM at 0.3 all the time, no sleep mode
    old = dataclasses.replace(rl, vllm_share=0.3, vllm_sleep=False, max_model_len=16384 + 768)
    assert plan_memory(seven_b, old, 8, 80).margin_gb < 20  # 18.5 GiB (the train step, 59.9)
    assert plan_memory(seven_b, old, 4, 96).margin_gb < 13  # 12.0 GiB (the train step, 82.1 of 96)


def test_vllm_share_holds_its_weights_and_a_kv_cache_for_max_model_len(seven_b):
    rl = profile_runs(PARAMS, "paper")["rl"]
    v = plan_memory(seven_b, rl, 8, 80).vllm
    assert v["kv_bytes_per_token"] == 2 * 28 * 512 * 2  # k and v, 28 layers, 4 KV heads × 128, bf16
    assert v["weights_gb"] == pytest.approx(2 * seven_b.params / GIB)
    assert v["kv_tokens"] == int(
        (v["budget_gb"] - v["weights_gb"] - v["allowance_gb"]) * GIB // v["kv_bytes_per_token"]
    )
    assert v["rollout_sequences"] == 12 and v["kv_tokens"] > v["rollout_tokens"] > v["max_model_len"] == 4096
    assert not plan_memory(
        seven_b, dataclasses.replace(rl, vllm_share=0.2), 8, 80
    ).vllm_fits  # 16 GiB: weights + allowance
    assert not plan_memory(seven_b, dataclasses.replace(rl, max_model_len=1024), 8, 80).vllm_fits  # prompt 1,280 + 768


def test_plan_command(capsys):
    assert main(["plan", "--gpus", "8", "--gpu-gb", "80", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["sft"]["fits"] and out["rl"]["fits"] and round(out["params"] / 1e9, 2) == 8.29
    rl = out["rl"]
    assert set(rl["phases"]) == {"start-up", "rollout", "train step", "weight sync (streamed)"}
    assert rl["peak_phase"] == "rollout" and rl["total_gb"] == rl["phases"]["rollout"]["total_gb"]
    assert rl["margin_gb"] == pytest.approx(0.98 * 80 - rl["total_gb"], abs=0.01) and rl["margin_gb"] > 0
    assert main(["plan", "--gpus", "8", "--gpu-gb", "80"]) == 0
    text = capsys.readouterr().out
    for line in (
        "start-up peak: 8.8 GiB per GPU",
        "weight sync peak: 36.8 GiB",
        "margin (GiB left)",
        f"rl: peak rollout {rl['total_gb']:.1f} GiB, margin {rl['margin_gb']:.1f} GiB",
    ):
        assert line in text, line
    assert main(["plan", "--gpus", "1", "--gpu-gb", "80"]) == 1  # does not fit: exit 1


@pytest.fixture(scope="module")
def measured_setup(tiny_model_dir, synth_data):
    """The tiny model, a 16-frame video prompt at 4 × 56 × 56 pixels, G = 4 completions of uneven length."""
    from videor1.media import MediaRules, load_medium
    from videor1.models import build_processor, load_processor
    from videor1.rl.rollout import prompt_inputs

    pixels = 4 * 56 * 56
    rules = MediaRules(
        max_frames=16, video_min_pixels=pixels, video_max_pixels=pixels, image_min_pixels=3136, image_max_pixels=7056
    )
    processor = build_processor(
        load_processor(tiny_model_dir).tokenizer,
        image_min_pixels=3136,
        image_max_pixels=7056,
        video_min_pixels=pixels,
        video_max_pixels=pixels,
    )
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
            trainer = RLTrainer(
                model, ref, processor, None, [], rules, cfg, tmp, log=lambda _: None, world=init_world()
            )
            with PeakTensorMemory(held) as memory:
                for _ in range(2):  # the second step holds AdamW's moments
                    trainer.update([group], [torch.tensor([1.0, -0.5, 0.5, 0.25])])
        run = RunShape(
            "rl",
            prompt_tokens=prompt_tokens,
            completion_tokens=length,
            completions=g,
            vision_patches=patches,
            gradient_checkpointing=checkpointing,
            sharding="none",
            compute_bytes=4,
        )
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
        run = RunShape(
            "sft",
            prompt_tokens=prompt_tokens,
            vision_patches=patches,
            gradient_checkpointing=checkpointing,
            sharding="none",
            compute_bytes=4,
        )
    planned = plan_memory(ModelShape.from_config(model.config), run, 1, 1.0, context_bytes=0)
    return memory.peak / 2**30, planned.total_gb


@pytest.mark.parametrize("stage,checkpointing", [("rl", False), ("rl", True), ("sft", False), ("sft", True)])
def test_the_plan_predicts_the_tiny_models_measured_peak_on_cpu(tiny_model_dir, measured_setup, stage, checkpointing):
    """Every tensor an fp32 step on this CPU allocates, counted until freed, against the plan's terms for the same
    shapes: the plan is a sum of terms, so a little above the measured peak, never far below it."""
    measured, planned = _peak_and_plan(tiny_model_dir, measured_setup, stage, checkpointing)
    print(f"{stage} checkpointing={checkpointing}: plan {planned * 1024:.1f} MiB, measured {measured * 1024:.1f} MiB")
    assert 0.9 * measured <= planned <= 1.3 * measured, (
        f"plan {planned * 1024:.1f} MiB, measured {measured * 1024:.1f} MiB"
    )


@pytest.mark.parametrize("config", ["qwen2_5_vl_7b", "qwen3_vl_8b"])
def test_the_gpu_step_benchmark_runs_at_toy_size_on_this_cpu(tmp_path, config):
    """``bench/gpu_step.py`` is the check a lent GPU runs once, on either paper-scale architecture (Qwen3-VL's
    prompt with a timestamped block per temporal patch); at toy widths it runs here, so it stays working."""
    import subprocess
    import sys

    repo = Path(__file__).resolve().parents[1]
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench.gpu_step",
            "--tiny",
            "--config",
            str(CONFIGS / f"{config}.json"),
            "--steps",
            "1",
            "--out",
            str(tmp_path / "step"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=repo,
        env={**__import__("os").environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr[-3000:]
    record = json.loads((tmp_path / "step.json").read_text())
    assert record["device"] == "cpu" and set(record["results"]) == {"rl", "sft"}
    for stage, r in record["results"].items():
        assert r["seconds"] > 0 and r["peak_gib"] > 0, stage
        assert r["executed_tflop"] > r["model_tflop"] > 0, stage  # checkpointing recomputes the forward
        assert 0.9 <= r["plan_over_measured"] <= 1.3, stage
    assert (tmp_path / "step.md").read_text().startswith("# One RL and one SFT step")
