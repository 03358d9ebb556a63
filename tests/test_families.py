"""The model families beside Qwen2.5-VL: Qwen3-VL and Qwen3.5 (videor1/models/families/).

Frame and pixel rules per family against vectors computed with qwen-vl-utils' own ``vision_process.py``
(QwenLM/Qwen3-VL @ 96588727, its ``smart_resize`` and ``fetch_video``'s cap run on these inputs); the tiny
models built, saved and loaded as their real transformers classes; Qwen3-VL's prompt timestamps equal the sampled
frames' times in the source (and stay those of the positions when the frames are shuffled); and Qwen3-VL's one
input path on both engines: the same prompt token ids on images and videos, vLLM's prefill positions equal to
transformers', greedy outputs row by row, and a weight sync by the family's parameter names.
"""

from __future__ import annotations

import copy
import json
import re

import pytest
import torch

from videor1.eval import EvalRun, ResultStore, evaluate_rows
from videor1.generation import GenerationRequest, SamplingConfig, TransformersBackend, processor_inputs, prompt_length
from videor1.generation.inputs import chat_text
from videor1.media import MediaRules, load_medium, qwen_vl_utils_max_pixels, smart_resize
from videor1.models import (
    FAMILIES,
    family_of,
    input_family,
    load_model,
    load_processor,
    save_model_dir,
)
from videor1.models.families import QWEN2_5_VL, QWEN3_5, QWEN3_VL, patch_times
from videor1.prompts import user_message
from videor1.rl.rollout import shuffle_frames

from .conftest import redraw

TINY = dict(image_min_pixels=3136, image_max_pixels=9216, video_min_pixels=3136, video_max_pixels=4096)
RULES = MediaRules(max_frames=8, **TINY)
BENCHMARKS = ["mvbench", "tempcompass", "videomme", "videommmu", "vsibench", "mmvu"]
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=24)
STAMP = re.compile(r"<([0-9.]+) seconds>")


@pytest.mark.parametrize(
    ("factor", "size", "nframes", "expected"),
    [  # (height, width) -> qwen-vl-utils' resize with the family's default video bounds (128..768 tokens)
        (28, (720, 1280), 16, (560, 1008)),
        (32, (720, 1280), 16, (640, 1152)),
        (28, (480, 854), 32, (476, 840)),
        (32, (480, 854), 32, (480, 864)),
        (28, (720, 1280), 768, (336, 644)),  # the per-video budget binds: 300 tokens a frame
        (32, (720, 1280), 768, (384, 736)),
    ],
)
def test_video_frames_resize_as_qwen_vl_utils_does_for_the_family(factor, size, nframes, expected):
    low, high = 128 * factor**2, 768 * factor**2
    cap = qwen_vl_utils_max_pixels(low, high, nframes, factor=factor)
    assert cap == (300 * factor**2 if nframes == 768 else high)
    assert smart_resize(*size, factor=factor, min_pixels=low, max_pixels=cap) == expected


@pytest.mark.parametrize(
    ("factor", "size", "expected"),
    [
        (28, (84, 84), (84, 84)),
        (32, (84, 84), (96, 96)),
        (28, (1080, 1920), (1092, 1932)),
        (32, (1080, 1920), (1088, 1920)),
        (28, (33, 500), (28, 504)),
        (32, (33, 500), (32, 512)),
    ],
)
def test_images_resize_as_qwen_vl_utils_does_for_the_family(factor, size, expected):
    assert smart_resize(*size, factor=factor, min_pixels=4 * factor**2, max_pixels=16384 * factor**2) == expected


def test_each_family_has_its_token_side_and_its_rules_carry_it():
    assert [(f.name, f.factor) for f in FAMILIES.values()] == [("qwen2_5_vl", 28), ("qwen3_vl", 32), ("qwen3_5", 32)]
    assert QWEN3_VL.media_rules(RULES).factor == 32 and RULES.factor == 28
    # the tiny profile's bounds give each family its natural size: 4 tokens a frame pair, 9 an image
    assert smart_resize(56, 56, factor=28, min_pixels=3136, max_pixels=4096) == (56, 56)
    assert smart_resize(56, 56, factor=32, min_pixels=3136, max_pixels=4096) == (64, 64)
    assert smart_resize(84, 84, factor=32, min_pixels=3136, max_pixels=9216) == (96, 96)


def test_patch_times_are_the_mean_time_of_each_pair_of_frames():
    # the tiny profile's clip: 20 frames at 4 fps sampled to indices 0, 3, 5, 8, ...
    assert patch_times([0, 3, 5, 8, 11, 14, 16, 19], 4.0) == [0.375, 1.625, 3.125, 4.375]
    assert patch_times([0, 5, 9], 5.0) == [0.5, 1.8]  # an odd count: the last frame fills its patch


CLASSES = {
    "qwen2_5_vl": ("Qwen2_5_VLForConditionalGeneration", "Qwen2_5_VLProcessor"),
    "qwen3_vl": ("Qwen3VLForConditionalGeneration", "Qwen3VLProcessor"),
    "qwen3_5": ("Qwen3_5ForConditionalGeneration", "Qwen3VLProcessor"),
}


@pytest.mark.parametrize("name", list(FAMILIES))
def test_a_tiny_model_of_each_family_loads_as_its_class_and_counts_its_prompt(name, family_model_dirs, synth_data):
    """Built, saved and loaded by the family config.json names; the prompt length counted without processing pixels
    (timestamps included) is the processor's, and transformers generates from image and video prompts."""
    model, processor = load_model(family_model_dirs[name]), load_processor(family_model_dirs[name])
    assert (type(model).__name__, type(processor).__name__) == CLASSES[name]
    assert family_of(family_model_dirs[name]).name == name and family_of(model).name == name
    if name == "qwen3_vl":
        assert model.config.vision_config.deepstack_visual_indexes == [0]
    if name == "qwen3_5":
        assert model.config.text_config.layer_types == ["linear_attention", "full_attention"]
    rows = json.loads((synth_data / "train.json").read_text())
    backend = TransformersBackend(model, processor, batch_size=2)
    rules = input_family(processor).media_rules(RULES)
    requests = []
    for kind in ("video", "image"):
        row = next(r for r in rows if r["data_type"] == kind)
        request = GenerationRequest([user_message(row)], load_medium(synth_data / row["path"], kind, rules))
        text = chat_text(processor, request.messages, add_generation_prompt=True)
        ids = processor_inputs(processor, [text], [request.medium])["input_ids"]
        assert prompt_length(processor, request.messages, request.medium) == ids.shape[1], kind
        requests.append(request)
    outputs = backend.generate(requests, SamplingConfig(temperature=0.0, max_new_tokens=4))
    assert [len(c[0].token_ids) for c in outputs] == [4, 4]


def test_media_read_under_another_familys_rules_are_refused_in_one_line(family_model_dirs, synth_data):
    processor = load_processor(family_model_dirs["qwen3_vl"])
    row = next(r for r in json.loads((synth_data / "train.json").read_text()) if r["data_type"] == "video")
    medium = load_medium(synth_data / row["path"], "video", RULES)  # 28-px rules: 56 x 56 frames
    text = chat_text(processor, [user_message(row)], add_generation_prompt=True)
    with pytest.raises(ValueError, match="56x56 px is not in whole 32-px tokens of Qwen3-VL"):
        processor_inputs(processor, [text], [medium])


def prompt_stamps(processor, row, medium) -> list[float]:
    text = chat_text(processor, [user_message(row)], add_generation_prompt=True)
    ids = processor_inputs(processor, [text], [medium])["input_ids"][0]
    return [float(t) for t in STAMP.findall(processor.tokenizer.decode(ids))]


@pytest.mark.parametrize("name", ["qwen3_vl", "qwen3_5"])
def test_prompt_timestamps_are_the_sampled_frames_times_and_survive_a_shuffle(
    name, family_model_dirs, synth_data, long_clip
):
    """Each ``<t seconds>`` is the mean source time of its two frames (index / source fps), not the sampled fps's
    i / 1.6; a shuffled clip keeps the timestamps of the positions, only the contents move."""
    processor = load_processor(family_model_dirs[name])
    rules = input_family(processor).media_rules(RULES)
    row = next(r for r in json.loads((synth_data / "train.json").read_text()) if r["data_type"] == "video")
    for path, frames in ((synth_data / row["path"], 8), (long_clip, 16)):
        medium = load_medium(path, "video", MediaRules(**{**rules.__dict__, "max_frames": frames}))
        video = medium.video
        truth = [round(t, 1) for t in patch_times(video.indices, video.info.fps)]
        stamps = prompt_stamps(processor, row, medium)
        assert stamps == truth and len(stamps) == frames // 2
        assert stamps != [round(t, 1) for t in patch_times(list(range(frames)), video.sample_fps)]
        shuffled, perm = shuffle_frames(medium, torch.Generator().manual_seed(0))
        assert perm != sorted(perm) and prompt_stamps(processor, row, shuffled) == stamps
    assert truth[-1] == pytest.approx(35.2)  # the long clip: 183 frames at 5 fps, its last pair at 34.0 and 36.4 s


# ----- Qwen3-VL on vLLM and transformers: one input path ---------------------------------------------------------

vllm_engine = pytest.importorskip("videor1.generation.vllm_engine")


@pytest.fixture(scope="module")
def sharp_qwen3(family_model_dirs, tmp_path_factory):
    model = load_model(family_model_dirs["qwen3_vl"])
    redraw(model, seed=1)
    target = tmp_path_factory.mktemp("models") / "sharp-qwen3-vl"
    save_model_dir(model, load_processor(family_model_dirs["qwen3_vl"]), target)
    return target


@pytest.fixture(scope="module")
def engine3(sharp_qwen3):
    backend = vllm_engine.VLLMBackend(str(sharp_qwen3), max_model_len=2048, dtype="float32", max_num_seqs=64)
    yield backend
    del backend


@pytest.fixture(scope="module")
def hf3(sharp_qwen3):
    return TransformersBackend(load_model(sharp_qwen3), load_processor(sharp_qwen3), batch_size=16)


def qwen3_requests(processor, synth_data):
    rules = QWEN3_VL.media_rules(RULES)
    rows = json.loads((synth_data / "train.json").read_text())
    return [
        GenerationRequest([user_message(r)], load_medium(synth_data / r["path"], r["data_type"], rules)) for r in rows
    ]


def test_qwen3_vl_prompt_ids_and_prefill_positions_are_identical_on_both_engines(engine3, hf3, synth_data):
    requests = qwen3_requests(hf3.processor, synth_data)
    assert {r.medium.data_type for r in requests} == {"image", "video"}
    theirs = engine3.prompt_token_ids(requests)
    ours = [
        processor_inputs(hf3.processor, [chat_text(hf3.processor, r.messages, add_generation_prompt=True)], [r.medium])[
            "input_ids"
        ][0].tolist()
        for r in requests
    ]
    assert sum(a == b for a, b in zip(theirs, ours)) == len(requests)  # 100 %
    model, seen = engine3.engine_model(), []
    forward = model.forward

    def recording_forward(input_ids, positions, *args, **kwargs):
        seen.append(positions.clone())
        return forward(input_ids, positions, *args, **kwargs)

    model.forward = recording_forward
    try:
        for kind in ("video", "image"):
            request = next(r for r in requests if r.medium.data_type == kind)
            seen.clear()
            engine3.llm.reset_prefix_cache()  # else a cached prefix skips most of the prompt's forward
            engine3.generate([request], SamplingConfig(temperature=0.0, max_new_tokens=1))
            inputs = processor_inputs(
                hf3.processor,
                [chat_text(hf3.processor, request.messages, add_generation_prompt=True)],
                [request.medium],
            )
            positions, _ = hf3.model.model.get_rope_index(
                inputs["input_ids"],
                inputs["mm_token_type_ids"],
                inputs.get("image_grid_thw"),
                inputs.get("video_grid_thw"),
                attention_mask=inputs["attention_mask"],
            )
            n = inputs["input_ids"].shape[1]
            assert torch.equal(seen[0][:, :n], positions[:, 0]), kind
    finally:
        model.forward = forward


def test_qwen3_vl_greedy_outputs_match_transformers_on_the_benchmarks(engine3, hf3, synth_data, tmp_path):
    """Every benchmark row at both tiny frame counts, fp32 on both engines: the same tokens, all 48 (the issue's bar is
    95%; a processor whose image and video normalisation differ, which vLLM refuses now, missed it at 41 of 48)."""
    differ, total = [], 0
    for frames in (4, 8):
        rules = QWEN3_VL.media_rules(MediaRules(**{**RULES.__dict__, "max_frames": frames}))
        run = EvalRun(media_root=synth_data, rules=rules, sampling=GREEDY, batch_size=16)
        for bench in BENCHMARKS:
            rows = json.loads((synth_data / f"eval_{bench}.json").read_text())
            a, _ = evaluate_rows(rows, engine3, run, ResultStore(tmp_path / f"v-{bench}@{frames}.jsonl", "v"))
            b, _ = evaluate_rows(rows, hf3, run, ResultStore(tmp_path / f"t-{bench}@{frames}.jsonl", "t"))
            assert all(x["output"] is not None for x in a + b)
            differ += [
                x["problem_id"]
                for x, y in zip(a, b)
                if (x["output"], x["completion_tokens"]) != (y["output"], y["completion_tokens"])
            ]
            total += len(rows)
    assert total == 48 and differ == [], f"{len(differ)} of {total} rows differ: {differ}"


def test_qwen3_vl_weight_sync_by_its_parameter_names_makes_vllm_sample_the_update(engine3, hf3, synth_data):
    requests = qwen3_requests(hf3.processor, synth_data)[:3] + qwen3_requests(hf3.processor, synth_data)[-3:]
    before = engine3.generate(requests, GREEDY)
    policy = copy.deepcopy(hf3.model)
    redraw(policy, seed=2)  # DeepStack mergers, vision tower and decoder alike: a stale one would show
    engine3.sync_weights(policy.state_dict().items())
    try:
        after = engine3.generate(requests, GREEDY)
        expected = TransformersBackend(policy, hf3.processor, batch_size=8).generate(requests, GREEDY)
        assert [c[0].token_ids for c in after] == [c[0].token_ids for c in expected]
        assert sum(a[0].token_ids != b[0].token_ids for a, b in zip(after, before)) == len(requests)
    finally:
        engine3.sync_weights(hf3.model.state_dict().items())


def test_qwen2_5_vl_inputs_keep_their_sampled_fps_metadata():
    """Qwen2.5-VL's temporal positions come from the sampled fps (second_per_grid_ts = 2 / fps), so its metadata
    stays the sampled frames' own; Qwen3-VL's and Qwen3.5's is the source's."""
    from videor1.media.video import SampledVideo, VideoInfo

    video = SampledVideo(
        torch.zeros(4, 3, 56, 56, dtype=torch.uint8), 1.6, [0, 3, 5, 8], VideoInfo(20, 4.0, 56, 56, "h264")
    )
    assert QWEN2_5_VL.video_metadata(video)["fps"] == 1.6
    assert QWEN2_5_VL.video_metadata(video)["frames_indices"] == [0, 1, 2, 3]
    for family in (QWEN3_VL, QWEN3_5):
        assert family.video_metadata(video)["fps"] == 4.0
        assert family.video_metadata(video)["frames_indices"] == [0, 3, 5, 8]


def test_vllm_refuses_a_processor_that_normalises_images_and_videos_differently(family_model_dirs, tmp_path):
    """vLLM normalises every medium with the image processor's statistics: such a model is refused before any
    engine starts, in one line."""
    processor = load_processor(family_model_dirs["qwen3_vl"])
    processor.video_processor.image_mean = [0.48145466, 0.4578275, 0.40821073]  # CLIP's, as the image processor had
    save_model_dir(load_model(family_model_dirs["qwen3_vl"]), processor, tmp_path / "mixed")
    with pytest.raises(ValueError, match="normalise differently"):
        vllm_engine.VLLMBackend(str(tmp_path / "mixed"), max_model_len=2048, dtype="float32")
