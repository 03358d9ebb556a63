"""N processes against one: torchrun with gloo on this CPU, FSDP2 sharding, the same numbers."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
import torch

from tests.conftest import REPO, kill_when, shared_project, torchrun, torchrun_two_nodes


@pytest.fixture(scope="module")
def rl_updates(tiny_model_dir, synth_data, long_clip, tmp_path_factory):
    """One process, and two nodes of one process each (ranks on different nodes: both local rank 0)."""

    def build(out):
        args = lambda n: (str(tiny_model_dir), str(synth_data), str(long_clip), str(out / f"{n}.pt"))  # noqa: E731
        torchrun(1, "rl_update.py", *args(1))
        torchrun_two_nodes("rl_update.py", *args(2))

    out = shared_project(tmp_path_factory, "rl_update", build)
    return torch.load(out / "1.pt"), torch.load(out / "2.pt")


@pytest.mark.slow
@pytest.mark.parametrize("split", ["even", "uneven", "one_rank"])
@pytest.mark.parametrize("compute_dtype", ["float32", "bfloat16"])
def test_an_rl_update_on_two_nodes_equals_one_process(rl_updates, compute_dtype, split):
    """However the step's groups fall on the ranks (2 + 2, 3 + 1, 4 + 0: a rank whose rows were all skipped), the
    update is the one process's. An uneven split hung before (a collective in the padding loop's condition)."""
    one, two = rl_updates[0][f"{compute_dtype}/even"], rl_updates[1][f"{compute_dtype}/{split}"]
    assert rl_updates[0]["world"] == 1 and rl_updates[1]["world"] == 2
    assert two["groups"] == {"even": 2, "uneven": 3, "one_rank": 4}[split]  # rank 0's share
    assert two["gathered_after_update"] == {
        "policy": 0,
        "reference": 0,
    }  # every unit resharded, the reference's root too
    tol = dict(rel=1e-5, abs=1e-7) if compute_dtype == "float32" else dict(rel=2e-2, abs=1e-4)
    for key in ("loss", "kl", "grad_norm"):
        assert two[key] == pytest.approx(one[key], **tol), key
    assert one["weights"].keys() == two["weights"].keys()
    # AdamW's first step moves every weight by about lr (1e-3) whatever its gradient's size: compare to that scale
    diffs = torch.cat([(two["weights"][k] - w).abs().flatten() for k, w in one["weights"].items()])
    if compute_dtype == "float32":
        assert float(diffs.max()) < 1e-5
    else:  # bf16 rounding differs with the shard layout; AdamW then flips the rare weight whose gradient is ~0
        assert float((diffs > 1e-4).float().mean()) < 0.01 and float(diffs.mean()) < 1e-5  # measured: 0.28 %


@pytest.mark.slow
def test_a_checkpointed_rl_update_on_two_nodes_equals_one_process(rl_updates):
    """Gradient checkpointing (the paper profile): whole sequences, one vision-tower call per group and the
    chunked log-prob head, all inside FSDP2's forward; split 3 + 1 over two nodes, equal to one process."""
    one, two = rl_updates[0]["float32/checkpointed"], rl_updates[1]["float32/checkpointed"]
    for key in ("loss", "kl", "grad_norm"):
        assert two[key] == pytest.approx(one[key], rel=1e-5, abs=1e-7), key
    assert one["grad_norm"] == pytest.approx(rl_updates[0]["float32/even"]["grad_norm"], rel=1e-5)  # = no checkpointing
    assert max(float((two["weights"][k] - w).abs().max()) for k, w in one["weights"].items()) < 1e-5


@pytest.mark.slow
def test_a_sharded_bf16_forward_runs_at_the_positions_of_the_fp32_seconds(rl_updates):
    """A clip at 4.575 s per temporal patch: the M-RoPE ids the FSDP2-sharded bf16 forward computes equal those of
    its fp32 seconds, on two nodes as on one process. The same ids from the seconds in bf16 (what FSDP's default
    input cast did) differ: the test sees the bug it guards against."""
    from videor1.models.rope import vision_positions

    for result in rl_updates:
        positions = result["positions"]
        assert positions["seconds"] == [pytest.approx(4.575)]
        assert torch.equal(positions["sharded_bf16"], positions["expected"])
    grid, merge, tokens_per_second = (8, 4, 4), 2, 2
    seconds = torch.tensor(positions["seconds"])
    exact = vision_positions(0, grid, merge, tokens_per_second * seconds.item())[0].unique().tolist()
    rounded = vision_positions(0, grid, merge, tokens_per_second * seconds.bfloat16().item())[0].unique().tolist()
    assert exact == [0, 9, 18, 27, 36, 45, 54, 64] and rounded[-1] == 63
    assert positions["video_temporal"] == exact  # the prompt's video tokens, from the block's first id


@pytest.mark.slow
def test_a_two_process_rl_run_killed_mid_way_resumes_to_the_uninterrupted_weights(tiny_model_dir, synth_data, tmp_path):
    """Two ranks sampling from full copies synced from the FSDP2 shards after every update (and after the resume),
    sharded checkpoints after every step; kill -9 of the whole launch mid-run."""
    args = lambda name: (str(tiny_model_dir), str(synth_data), str(tmp_path / name), str(tmp_path / f"{name}.pt"))  # noqa: E731
    torchrun(2, "rl_train.py", *args("straight"))
    straight = torch.load(tmp_path / "straight.pt")
    assert straight["world"] == 2 and [r["step"] for r in straight["records"]] == [1, 2, 3, 4]
    assert all(r["groups"] == 2 for r in straight["records"])  # one group per rank, both counted
    assert all(r["distinct_completions"] > 1 for r in straight["records"])

    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            str(REPO / "tests" / "dist" / "rl_train.py"),
            *args("killed"),
        ],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    # torchrun and both ranks, mid-run
    kill_when(proc, lambda: (tmp_path / "killed" / "step-000002").exists(), within=300, group=True)
    assert not (tmp_path / "killed.pt").exists(), "the run finished before it was killed"
    torchrun(2, "rl_train.py", *args("killed"))
    resumed = torch.load(tmp_path / "killed.pt")
    assert [r["step"] for r in resumed["records"]] == [1, 2, 3, 4]
    for name, w in straight["weights"].items():
        assert torch.allclose(resumed["weights"][name], w, atol=1e-6, rtol=0), name
    for a, b in zip(straight["records"], resumed["records"]):
        assert a["reward"] == pytest.approx(b["reward"]) and a["loss"] == pytest.approx(b["loss"], rel=1e-5, abs=1e-7)


@pytest.fixture(scope="module")
def sft_one_process(tiny_model_dir, synth_data, tmp_path_factory):
    """The 1-process baselines of every run the 2-process variants make, trained in one launch."""

    def build(out):
        torchrun(1, "sft_step.py", str(tiny_model_dir), str(synth_data), str(out / "one.pt"), "ddp", *SFT_RUNS)

    return torch.load(shared_project(tmp_path_factory, "sft_one", build) / "one.pt")


# GLOBAL_BATCH:BROKEN_IDS. The data order is [11, 5, 16, 4], then [12, 6, 10, 21] (ids 1-12 videos, 13-22 images).
# "2:11": each process one row a step; rank 0's first micro-batch is the broken row alone (the placeholder).
# "4:11,5": two rows a process. First step: rank 0's two rows are broken (the placeholder, a video), rank 1 holds an
# image and a video; second step: rank 0 two videos, rank 1 a video and an image. Under ZeRO-3 every vision-tower call
# gathers its parameters: a process that called it once per modality would make more collectives than the other.
SFT_RUNS = ("2:11", "4:11,5")


@pytest.mark.slow
@pytest.mark.parametrize("run, engine", [("2:11", "ddp"), ("2:11", "zero2"), ("4:11,5", "zero3")])
def test_sft_steps_on_two_processes_equal_one_process(
    sft_one_process, tiny_model_dir, synth_data, tmp_path, run, engine
):
    """The loss is the token mean over the global batch however rows fall into processes. With broken rows,
    one process's micro-batch is empty: it runs the placeholder (weight 0) and the step still matches. The
    2 processes run DDP (Trainer's default), DeepSpeed ZeRO-2 (the paper's SFT engine) or ZeRO-3 (parameters
    sharded too, on mixed image+video micro-batches) over gloo."""
    torchrun(2, "sft_step.py", str(tiny_model_dir), str(synth_data), str(tmp_path / "2.pt"), engine, run)
    one, two = sft_one_process[run], torch.load(tmp_path / "2.pt")[run]
    assert two["world"] == 2 and len(one["loss"]) == len(two["loss"]) == 2
    assert two["loss"] == pytest.approx(one["loss"], rel=1e-5) and two["grad_norm"] == pytest.approx(
        one["grad_norm"], rel=1e-5
    )
    assert two["weights"].keys() == one["weights"].keys()
    worst = max(float((two["weights"][k].float() - w.float()).abs().max()) for k, w in one["weights"].items())
    # AdamW moves a weight by about lr (1e-3) a step, 2e-3 over the 2: the processes' different summation order
    # leaves at most a hundredth of that (measured up to 1.3e-5, ZeRO-3 on a loaded machine)
    assert worst < 2e-5, worst
    broken = [int(i) for i in run.partition(":")[2].split(",")]
    # rank 0's first micro-batch was the broken rows alone: skipped, logged, never replaced
    assert [s["problem_id"] for s in two["skipped"]] == broken and all(s["step"] == 0 for s in two["skipped"])


# One vision-tower call per micro-batch (videor1/sft/vision.py), in process: what makes ZeRO-3 above possible.


def examples_for(synth_data, factor: int = 28) -> dict:
    import json

    from videor1.media import MediaRules
    from videor1.sft import SftDataset

    rules = MediaRules(
        max_frames=8,
        video_min_pixels=3136,
        video_max_pixels=3136 if factor == 28 else 4096,
        image_min_pixels=3136,
        image_max_pixels=7056 if factor == 28 else 9216,
        factor=factor,
    )
    rows = [
        {**r, "media_root": str(synth_data), "process": f"<think>It is {r['solution']}.</think>"}
        for r in json.loads((synth_data / "train.json").read_text())
    ]
    data = SftDataset(rows, rules)
    videos = [data[i] for i, r in enumerate(rows) if r["data_type"] == "video"]
    images = [data[i] for i, r in enumerate(rows) if r["data_type"] == "image"]
    return {"mixed": [videos[0], images[0], videos[1], images[1]], "images": images[:2], "videos": videos[:2]}


@pytest.fixture(scope="module")
def sft_examples(synth_data):
    return examples_for(synth_data)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl", "qwen3_5"])
def family_case(request, tiny_model_dir, family_model_dirs, synth_data):
    """(model directory, SFT examples read under its family's rules) of each family."""
    from videor1.models import get_family

    family = get_family(request.param)
    root = tiny_model_dir if family.name == "qwen2_5_vl" else family_model_dirs[family.name]
    return root, examples_for(synth_data, family.factor)


def module_calls(model) -> list[str]:
    """The vision tower's and the text embedding's calls, in order (under ZeRO-3: the order of their gathers)."""
    calls = []
    model.model.visual.register_forward_pre_hook(lambda *_: calls.append("tower"))
    model.model.language_model.embed_tokens.register_forward_pre_hook(lambda *_: calls.append("embed"))
    return calls


def loss_and_grads(model, batch) -> tuple[torch.Tensor, torch.Tensor, dict[str, torch.Tensor]]:
    model.train()
    model.zero_grad(set_to_none=True)
    out = model(**{k: v for k, v in batch.items() if k != "problem_ids"})
    out.loss.backward()
    return (
        out.loss.detach(),
        out.logits.detach(),
        {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None},
    )


def test_one_vision_call_computes_what_one_call_per_modality_computes(family_case):
    """Images then videos in one tower call: the per-item embeddings (and Qwen3-VL's DeepStack features), the loss
    and every gradient of a mixed batch equal transformers' two calls (fp32), in each family; the tower runs once
    instead of twice."""
    from videor1.models import family_of, load_model, load_processor
    from videor1.sft import SftCollator
    from videor1.sft.vision import use_one_vision_call, vision_features

    model_dir, examples = family_case
    plain, processor = load_model(model_dir), load_processor(model_dir)
    batch = SftCollator(processor)(examples["mixed"])
    inner = plain.model
    with torch.no_grad():
        image_out = inner.get_image_features(batch["pixel_values"], batch["image_grid_thw"], return_dict=True)
        video_out = inner.get_video_features(batch["pixel_values_videos"], batch["video_grid_thw"], return_dict=True)
        images, videos = image_out.pooler_output, video_out.pooler_output
        one_images, one_videos = vision_features(
            inner, batch["pixel_values"], batch["image_grid_thw"], batch["pixel_values_videos"], batch["video_grid_thw"]
        )
    deep = getattr(image_out, "deepstack_features", None)
    assert bool(deep) == (family_of(model_dir).name == "qwen3_vl")
    for one, out in ((one_images, image_out), (one_videos, video_out)):
        for got_layer, want_layer in zip(
            getattr(one, "deepstack_features", []), getattr(out, "deepstack_features", [])
        ):
            assert [float((g - w).abs().max()) < 1e-6 for g, w in zip(got_layer, want_layer)] == [True, True]
    assert [e.shape for e in one_images.pooler_output] == [e.shape for e in images] and len(images) == 2
    assert [e.shape for e in one_videos.pooler_output] == [e.shape for e in videos] and len(videos) == 2
    for got, want in zip(one_images.pooler_output + one_videos.pooler_output, images + videos):
        assert float((got - want).abs().max()) < 1e-6

    hooked = load_model(model_dir)
    use_one_vision_call(hooked)
    plain_calls, hooked_calls = module_calls(plain), module_calls(hooked)
    loss, logits, grads = loss_and_grads(plain, batch)
    one_loss, one_logits, one_grads = loss_and_grads(hooked, batch)
    assert plain_calls == ["embed", "tower", "tower"] and hooked_calls == ["tower", "embed"]
    assert float((one_loss - loss).abs()) < 1e-6 and float((one_logits - logits).abs().max()) < 1e-5
    assert one_grads.keys() == grads.keys() and any(k.startswith("model.visual.") for k in grads)
    for k, g in grads.items():
        assert torch.allclose(one_grads[k], g, rtol=1e-4, atol=1e-6), k


@pytest.mark.parametrize("modality", ["images", "videos"])
def test_one_vision_call_on_one_modality_is_bit_identical(family_case, modality):
    from videor1.models import load_model, load_processor
    from videor1.sft import SftCollator
    from videor1.sft.vision import use_one_vision_call

    model_dir, examples = family_case
    plain, hooked = load_model(model_dir), load_model(model_dir)
    use_one_vision_call(hooked)
    batch = SftCollator(load_processor(model_dir))(examples[modality])
    (loss, logits, grads), (one_loss, one_logits, one_grads) = (
        loss_and_grads(plain, batch),
        loss_and_grads(hooked, batch),
    )
    assert torch.equal(one_loss, loss) and torch.equal(one_logits, logits) and one_grads.keys() == grads.keys()
    assert all(torch.equal(one_grads[k], g) for k, g in grads.items())


def test_a_text_only_forward_of_a_distributed_run_still_calls_the_tower(tiny_model_dir, monkeypatch):
    """No vision in a micro-batch of one process: the tower still runs (weight 0), so that process gathers and
    reduces the tower's parameters as the others do; the loss is the plain forward's, the tower's gradients 0."""
    from videor1.generation import processor_inputs
    from videor1.models import load_model, load_processor
    from videor1.sft import vision

    processor = load_processor(tiny_model_dir)
    batch = dict(processor_inputs(processor, ["a question and its answer"], [None], padding_side="right"))
    batch["labels"] = batch["input_ids"].clone()
    plain, hooked = load_model(tiny_model_dir), load_model(tiny_model_dir)
    vision.use_one_vision_call(hooked)
    loss, logits, grads = loss_and_grads(plain, batch)
    calls = module_calls(hooked)
    assert torch.equal(loss_and_grads(hooked, batch)[0], loss) and calls == ["embed"]  # one process: nothing added
    calls.clear()
    monkeypatch.setattr(vision, "_distributed", lambda: True)
    one_loss, one_logits, one_grads = loss_and_grads(hooked, batch)
    assert calls == ["tower", "embed"] and torch.equal(one_loss, loss) and torch.equal(one_logits, logits)
    tower = {k: g for k, g in one_grads.items() if k.startswith("model.visual.")}
    assert tower and all(not g.any() for g in tower.values()) and not any(k.startswith("model.visual.") for k in grads)
    assert all(torch.equal(one_grads[k], g) for k, g in grads.items())


def test_a_placeholder_over_max_length_is_still_the_placeholder(tiny_model_dir, sft_examples):
    from videor1.models import load_processor
    from videor1.sft import IGNORE_INDEX, SftCollator

    video = sft_examples["videos"][0]
    collate = SftCollator(load_processor(tiny_model_dir), max_length=10, placeholder=video)
    batch = collate([video])  # too long: skipped; the placeholder (as long) stands in, uncut, weight 0
    assert batch["placeholder"] and batch["problem_ids"] == [] and (batch["labels"] == IGNORE_INDEX).all()
    assert "pixel_values_videos" in batch


def test_a_micro_batch_of_skipped_rows_is_a_real_forward_of_weight_zero(tiny_model_dir, tmp_path):
    """Every row skipped and no placeholder (one process): a forward of one black image, loss 0, a zero gradient for
    every parameter. (It summed the parameters before: under ZeRO-3 those are empty shards, and DeepSpeed stopped
    with "0 != 128 Cannot reduce scatter gradients whose size is not same as the params".)"""
    from videor1.models import load_model, load_processor
    from videor1.sft import SftCollator, SftConfig, SftTrainer
    from videor1.sft.data import empty_batch

    args = SftConfig(output_dir=str(tmp_path), bf16=False, deepspeed=None, gradient_checkpointing=False, use_cpu=True)
    trainer = SftTrainer(
        model=load_model(tiny_model_dir),
        args=args.training_arguments(),
        train_dataset=[],
        data_collator=SftCollator(load_processor(tiny_model_dir)),
    )
    model = trainer.model.train()
    calls = module_calls(model)
    zero = trainer.compute_loss(model, empty_batch())
    zero.backward()
    assert zero.item() == 0.0 and calls == ["tower", "embed"]
    assert all(p.grad is not None and not p.grad.any() for p in model.parameters() if p.requires_grad)
