"""SFT: assistant-only labels, mixed image+video batches that reach the loss, skipped rows, DeepSpeed configs."""

from __future__ import annotations

import json

import pytest
import torch

from videor1.configs import deepspeed_config
from videor1.cot import ScriptedTeacher, think_text
from videor1.media import MediaRules
from videor1.models import load_model, load_processor
from videor1.sft import IGNORE_INDEX, SftCollator, SftDataset, assistant_text, last_complete_checkpoint

RULES = MediaRules(
    max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056
)


@pytest.fixture(scope="module")
def cot_rows(synth_data):
    rows = [{**r, "media_root": str(synth_data)} for r in json.loads((synth_data / "train.json").read_text())]
    outputs = ScriptedTeacher(synth_data / "facts.jsonl").complete(rows)
    return [{**r, "process": f"<think>{think_text(o.completion)}</think>"} for r, o in zip(rows, outputs)]


@pytest.fixture(scope="module")
def model_and_processor(tiny_model_dir):
    return load_model(tiny_model_dir), load_processor(tiny_model_dir)


def mixed(cot_rows):
    videos = [r for r in cot_rows if r["data_type"] == "video"]
    images = [r for r in cot_rows if r["data_type"] == "image"]
    return [videos[0], images[0], videos[1], images[1]]


def test_labels_cover_exactly_the_assistant_reply(cot_rows, model_and_processor):
    _, processor = model_and_processor
    rows = mixed(cot_rows)
    batch = SftCollator(processor)([SftDataset(rows, RULES)[i] for i in range(len(rows))])
    tok = processor.tokenizer
    vision = {
        tok.convert_tokens_to_ids(t) for t in ("<|video_pad|>", "<|image_pad|>", "<|vision_start|>", "<|vision_end|>")
    }
    for i, row in enumerate(rows):
        ids, labels = batch["input_ids"][i], batch["labels"][i]
        kept = labels != IGNORE_INDEX
        assert tok.decode(ids[kept]) == assistant_text(row) + "<|im_end|>"
        assert not vision & set(ids[kept].tolist())
        assert (labels[batch["attention_mask"][i] == 0] == IGNORE_INDEX).all()  # padding masked
        first = int(kept.nonzero()[0])
        assert tok.decode(ids[:first]).endswith("<|im_start|>assistant\n")  # everything before is prompt


def test_mixed_batch_loss_equals_the_samples_one_by_one(cot_rows, model_and_processor):
    model, processor = model_and_processor
    rows = mixed(cot_rows)
    data = SftDataset(rows, RULES)
    collate = SftCollator(processor)
    batch = collate([data[i] for i in range(len(rows))])
    assert batch["pixel_values_videos"].shape[0] == 2 * 64 and batch["pixel_values"].shape[0] == 2 * 36
    assert batch["video_grid_thw"].tolist() == [[4, 4, 4]] * 2 and batch["image_grid_thw"].tolist() == [[1, 6, 6]] * 2
    assert batch["second_per_grid_ts"].tolist() == [1.25, 1.25]  # 2 frames per patch / 1.6 fps: not whole
    assert (batch["mm_token_type_ids"] > 0).sum(1).tolist() == [16, 9, 16, 9]  # each sample's own vision tokens

    def summed_loss(b):
        inputs = {k: v for k, v in b.items() if k not in ("problem_ids", "labels")}
        with torch.no_grad():
            logits = model(**inputs).logits[:, :-1]
        labels = b["labels"][:, 1:]
        return torch.nn.functional.cross_entropy(
            logits.reshape(-1, logits.shape[-1]), labels.reshape(-1), ignore_index=IGNORE_INDEX, reduction="sum"
        ), (labels != IGNORE_INDEX).sum()

    total, count = summed_loss(batch)
    parts = [summed_loss(collate([data[i]])) for i in range(len(rows))]
    assert count == sum(c for _, c in parts)
    assert torch.allclose(total, sum(s for s, _ in parts), rtol=1e-4)


def test_the_video_reaches_the_loss(cot_rows, model_and_processor):
    model, processor = model_and_processor
    rows = mixed(cot_rows)
    data = SftDataset(rows, RULES)
    examples = [data[i] for i in range(len(rows))]
    batch = SftCollator(processor)(examples)
    with torch.no_grad():
        loss = model(**{k: v for k, v in batch.items() if k != "problem_ids"}).loss
    video = examples[0]["medium"].video
    flipped = type(video)(
        video.frames.flip(0), video.sample_fps, video.indices, video.info
    )  # the same frames, reversed
    examples[0] = {**examples[0], "medium": type(examples[0]["medium"])("video", video=flipped)}
    batch = SftCollator(processor)(examples)
    with torch.no_grad():
        changed = model(**{k: v for k, v in batch.items() if k != "problem_ids"}).loss
    assert abs(loss.item() - changed.item()) > 1e-6, (loss.item(), changed.item())


def test_unreadable_rows_are_dropped_and_logged_not_replaced(cot_rows, model_and_processor, tmp_path):
    _, processor = model_and_processor
    rows = mixed(cot_rows)
    rows[1] = {**rows[1], "media_root": str(tmp_path)}  # its image is not there
    skipped = []
    collate = SftCollator(processor, on_skip=lambda row, reason: skipped.append((row["problem_id"], reason)))
    data = SftDataset(rows, RULES)
    batch = collate([data[i] for i in range(len(rows))])
    assert batch["problem_ids"] == [rows[0]["problem_id"], rows[2]["problem_id"], rows[3]["problem_id"]]
    assert batch["input_ids"].shape[0] == 3
    assert skipped[0][0] == rows[1]["problem_id"] and rows[1]["path"][2:] in skipped[0][1]
    only_bad = collate([data[1]])
    assert only_bad["problem_ids"] == [] and only_bad["labels"].numel() == 0


def test_too_long_sequences_are_skipped(cot_rows, model_and_processor):
    _, processor = model_and_processor
    rows = mixed(cot_rows)
    skipped = []
    batch = SftCollator(processor, max_length=50, on_skip=lambda row, reason: skipped.append(reason))(
        [SftDataset(rows, RULES)[0]]
    )
    assert batch["problem_ids"] == [] and skipped[0].startswith("sequence too long")


def test_deepspeed_configs_parse_and_select(tmp_path):
    for name, stage in (("zero2", 2), ("zero3", 3)):
        path = deepspeed_config(name)
        config = json.loads(path.read_text())
        assert config["zero_optimization"]["stage"] == stage
        assert config["train_micro_batch_size_per_gpu"] == "auto" and config["gradient_clipping"] == "auto"
    assert deepspeed_config(None) is None and deepspeed_config("none") is None
    custom = tmp_path / "mine.json"
    custom.write_text('{"zero_optimization": {"stage": 1}}')
    assert deepspeed_config(str(custom)) == custom
    with pytest.raises(ValueError, match="zero2"):
        deepspeed_config("zero4")
    bad = tmp_path / "bad.json"
    bad.write_text("{")
    with pytest.raises(json.JSONDecodeError):
        deepspeed_config(str(bad))


def test_last_complete_checkpoint_passes_over_a_torn_one(tmp_path):
    for step in (4, 8, 12):
        (tmp_path / f"checkpoint-{step}").mkdir()
    (tmp_path / "checkpoint-4" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-8" / "trainer_state.json").write_text("{}")
    (tmp_path / "checkpoint-12" / "trainer_state.json").write_text('{"glo')  # killed mid-save
    assert last_complete_checkpoint(tmp_path).name == "checkpoint-8"
    assert last_complete_checkpoint(tmp_path / "absent") is None


def test_a_direct_answer_row_trains_on_its_answer_alone(synth_data, model_and_processor):
    """The toy's perception pretraining (issue 26): a row without a process is its solution, and only that is
    labelled."""
    _, processor = model_and_processor
    rows = [
        {**r, "media_root": str(synth_data), "process": None}
        for r in json.loads((synth_data / "train.json").read_text())
    ]
    rows = mixed(rows)
    batch = SftCollator(processor)([SftDataset(rows, RULES)[i] for i in range(len(rows))])
    for i, row in enumerate(rows):
        kept = batch["labels"][i] != IGNORE_INDEX
        assert processor.tokenizer.decode(batch["input_ids"][i][kept]) == row["solution"] + "<|im_end|>"


@pytest.mark.slow
def test_the_perceive_stage_trains_the_base_on_a_synth_stream(collected_project, tmp_path, monkeypatch):
    """`python -m tasks.sft --stage perceive`: the sft stage's training on a synth rows file's direct answers,
    into its own model, checkpoints, curve and metrics; a missing rows file is refused in one line."""
    import runpy
    import sys

    import yaml

    from videor1.data.synth import SynthConfig, generate

    from .conftest import copy_project

    project = copy_project(collected_project, tmp_path / "project")
    generate(
        project / "data" / "stream",
        SynthConfig(
            train_video_rows=0,
            train_image_rows=0,
            eval_rows_per_benchmark=1,
            pretrain_video_rows=6,
            pretrain_image_rows=2,
        ),
    )
    params = yaml.safe_load((project / "params.yaml").read_text())
    params["tiny"]["perceive"] = {
        "rows": "data/stream/pretrain.json",
        "media_root": "data/stream",
        "media": params["tiny"]["sft"]["media"],
        "train": {
            "max_steps": 3,
            "save_steps": 2,
            "per_device_batch_size": 4,
            "learning_rate": 3.0e-4,
            "logging_steps": 1,
            "deepspeed": None,
            "use_cpu": True,
        },
    }
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    monkeypatch.chdir(project)
    monkeypatch.setattr(sys, "argv", ["tasks.sft", "--stage", "perceive"])
    runpy.run_module("tasks.sft", run_name="__main__", alter_sys=False)
    assert (project / "models" / "perceived" / "config.json").is_file()
    assert not (project / "models" / "sft").exists()
    metrics = json.loads((project / "metrics" / "perceive.json").read_text())
    assert metrics["rows"] == 8 and metrics["steps"] == 3 and metrics["skipped_rows"] == 0
    assert len((project / "plots" / "perceive_loss.csv").read_text().splitlines()) == 1 + 3

    params["tiny"]["perceive"]["rows"] = "data/stream/absent.json"
    (project / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    with pytest.raises(SystemExit, match="perceive: rows: data/stream/absent.json: "):
        runpy.run_module("tasks.sft", run_name="__main__", alter_sys=False)
