"""Eval protocols: the public eval script's numerics, by hand-computed cases, and the frame cache that decodes a
video once for every frame count and model."""

from __future__ import annotations

import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import replace

import pytest
import torch

from videor1.eval import run_fingerprint, summarize
from videor1.eval.protocol import PROTOCOLS, REFERENCE, resolve_protocol
from videor1.eval.runner import EvalRun
from videor1.eval.scoring import mean_relative_accuracy, mean_relative_accuracy_float32, score_prediction
from videor1.media import (
    FrameCache,
    MediaRules,
    frame_indices,
    frame_indices_float32,
    qwen_vl_utils_max_pixels,
    read_video,
)
from videor1.media import video as video_module
from videor1.media.sampling import smart_resize
from videor1.prompts import prompt_text

# -- the script's numerics, each case worked by hand from its formulas -------------------------------------------


@pytest.mark.parametrize(
    "pred,target,script,exact",
    [
        # 5 % error: float32 1 − 0.95 = 0.0500000119 > 0.05, so θ = 0.95 counts too (all 10); exactly, 9 of 10
        (9.5, 10, 1.0, 0.9),
        # 10 %: float32 1 − 0.9 = 0.1000000238 > 0.1000000015 (0.1 in float32): θ = 0.5 … 0.9 count, 9; exactly 8
        (9.0, 10, 0.9, 0.8),
        # 25 %: 1 − 0.75 = 0.25 in both, and 0.25 < 0.25 is false: θ = 0.5 … 0.7 count, 5 of 10
        (7.5, 10, 0.5, 0.5),
        # a target of 0: the script divides by 1e-8, so only an exact 0 scores, as the exact rule
        (0.0, 0.0, 1.0, 1.0),
        (0.001, 0.0, 0.0, 0.0),
    ],
)
def test_mra_float32_is_the_scripts_and_exact_stays_selectable(pred, target, script, exact):
    assert mean_relative_accuracy_float32(pred, target) == pytest.approx(script)
    assert mean_relative_accuracy(pred, target) == pytest.approx(exact)
    output, solution = f"<answer>{pred}</answer>", f"<answer>{target}</answer>"
    assert score_prediction(output, solution, "regression", mra="float32") == pytest.approx(script)
    assert score_prediction(output, solution, "regression") == pytest.approx(exact)


def test_the_scripts_video_pixel_cap_is_105369_and_lets_a_larger_frame_through():
    # max(min(128·28·28, 90,316,800 / n · 2), int(1.05 · 128·28·28)) = max(100,352, 105,369) at 16, 32 and 64 frames
    assert [qwen_vl_utils_max_pixels(100_352, 100_352, n) for n in (16, 32, 64)] == [105_369] * 3
    assert qwen_vl_utils_max_pixels(100_352, 100_352, 64, total_pixels=1_000_000) == 105_369  # the 1.05 floor wins
    assert qwen_vl_utils_max_pixels(100_352, 200_704, 16) == 200_704
    # a 280 × 364 frame (101,920 pixels, already multiples of 28): kept under the script's cap; under a strict
    # 100,352 cap it is scaled by sqrt(101,920 / 100,352) and floored to 252 × 336
    assert smart_resize(280, 364, min_pixels=100_352, max_pixels=105_369) == (280, 364)
    assert smart_resize(280, 364, min_pixels=100_352, max_pixels=100_352) == (252, 336)


def test_float32_frame_indices_are_the_scripts():
    # i · (total − 1) / (n − 1) = 61 · 135,434 / 63 = 131,134.508: exactly, it rounds up; float32 holds 131,134.5,
    # which rounds half to even, down
    script, exact = frame_indices_float32(135_435, 64), frame_indices(135_435, 64)
    assert script[61] == 131_134 and exact[61] == 131_135
    assert [i for i, (a, b) in enumerate(zip(script, exact)) if a != b] == [61]
    assert frame_indices_float32(120, 16) == frame_indices(120, 16)


# -- protocols -------------------------------------------------------------------------------------------------


def test_reference_and_paper_differ_only_in_temperature():
    ref, paper = PROTOCOLS["reference"], PROTOCOLS["paper"]
    assert (ref.temperature, paper.temperature, ref.top_p, ref.max_new_tokens) == (0.1, 0.01, 0.001, 1024)
    assert replace(paper, name="reference", temperature=0.1) == ref
    assert (ref.mra, ref.video_pixel_rule, ref.frame_index_rule, ref.wording) == (
        "float32",
        "qwen_vl_utils",
        "float32",
        "eval_script",
    )
    assert (ref.video_min_pixels, ref.video_max_pixels, ref.image_max_pixels) == (100_352, 100_352, 200_704)
    assert ref.rules(32).max_frames == 32 and ref.sampling(3).seed == 3


def test_overrides_are_named_in_the_label_and_unknown_knobs_refused():
    tiny = resolve_protocol("reference", {"max_new_tokens": 128, "video_min_pixels": 3136, "temperature": 0.1})
    assert tiny.label == "reference, max_new_tokens=128, video_min_pixels=3136"  # 0.1 is no change: not named
    assert tiny.to_dict()["overrides"] == {"max_new_tokens": 128, "video_min_pixels": 3136}
    with pytest.raises(ValueError, match="not knobs of a protocol"):
        resolve_protocol("reference", {"max_tokens": 5})
    with pytest.raises(ValueError, match="is not one of"):
        resolve_protocol("greedy")
    with pytest.raises(ValueError, match="video_pixel_rule"):
        resolve_protocol("spec", {"video_pixel_rule": "loose"})


def test_the_eval_script_wording_is_its_own_and_changes_the_run_fingerprint(synth_data):
    row = {
        "problem": "Which way?",
        "problem_type": "multiple choice",
        "options": ["A. left", "B. right"],
        "data_type": "video",
    }
    script, training = prompt_text(row, "eval_script"), prompt_text(row)
    assert "between the <think> and </think> tags" in script and "between the <answer> and </answer> tags." in script
    assert "between the <think> </think> tags" in training
    assert script.startswith("Which way?Options:\nA. left\nB. right\n\nPlease think")  # the script's layout
    run = EvalRun(media_root=synth_data, rules=MediaRules(), sampling=REFERENCE.sampling())
    assert run_fingerprint(run, [], {}, "vllm") != run_fingerprint(replace(run, wording="eval_script"), [], {}, "vllm")


def test_a_solution_that_is_not_a_number_is_listed_not_scored():
    rows = [
        {
            "problem_id": 1,
            "problem_type": "regression",
            "solution": "<answer>4.0</answer>",
            "output": "<answer>4</answer>",
        },
        {
            "problem_id": 2,
            "problem_type": "regression",
            "solution": "<answer>about four</answer>",
            "output": "<answer>4</answer>",
        },
        {
            "problem_id": 3,
            "problem_type": "numerical",
            "solution": "<answer>n/a</answer>",
            "output": "<answer>1</answer>",
        },
    ]
    s = summarize("vsibench", rows)
    assert s.rows == 1 and s.score == 1.0
    assert [u["problem_id"] for u in s.unscorable] == [2, 3] and "'about four' is not a number" in s.unscorable[0][
        "error"
    ]


# -- the frame cache -------------------------------------------------------------------------------------------

RULES = [MediaRules(max_frames=f, video_min_pixels=3136, video_max_pixels=7056) for f in (4, 8, 16)]


def _decodes(monkeypatch) -> list:
    calls = []
    real = video_module.read_frames

    def counting(path, indices=None, **kw):
        calls.append(list(indices))
        return real(path, indices, **kw)

    monkeypatch.setattr("videor1.media.cache.read_frames", counting)
    return calls


def _same(a, b) -> bool:
    return (
        torch.equal(a.frames, b.frames) and a.indices == b.indices and a.sample_fps == b.sample_fps and a.info == b.info
    )


def test_the_cache_decodes_once_for_every_frame_count_and_equals_a_separate_read(videos, tmp_path, monkeypatch):
    src = tmp_path / "clip.mp4"
    shutil.copy(videos["long_gop"], src)
    cache = FrameCache(tmp_path / "cache", 1 << 30)
    calls = _decodes(monkeypatch)
    warmed = cache.warm(src, RULES)
    assert len(calls) == 1 and calls[0] == sorted(set().union(*(v.indices for v in warmed)))  # one decode, the union
    for rules, video in zip(RULES, warmed):
        separate = read_video(
            src,
            fps=rules.fps,
            min_frames=rules.min_frames,
            max_frames=rules.max_frames,
            min_pixels=rules.video_min_pixels,
            max_pixels=rules.video_max_pixels,
        )
        assert _same(video, separate) and video.frames.dtype == torch.uint8
    again = FrameCache(tmp_path / "cache", 1 << 30)  # another process, another model: hits
    assert all(_same(again.load(src, r), v) for r, v in zip(RULES, warmed)) and len(calls) == 1

    time.sleep(0.01)
    src.write_bytes(videos["short_gop"].read_bytes())  # the file changed: a miss, the new frames
    changed = cache.load(src, RULES[0])
    assert len(calls) == 2 and changed.info.total_frames == 120 != warmed[0].info.total_frames
    assert (
        cache.load(src, replace(RULES[0], frame_index_rule="float32")) is not None and len(calls) == 3
    )  # a rule: a miss


def test_the_cache_stays_within_its_bound_and_survives_a_damaged_entry(videos, tmp_path, monkeypatch):
    one = FrameCache(tmp_path / "c", 1 << 30)
    one.warm(videos["long_gop"], RULES[:1])
    entry_bytes = one.size_bytes()
    bounded = FrameCache(tmp_path / "c2", int(2.5 * entry_bytes))
    for f in (4, 6, 8, 10):
        bounded.load(videos["long_gop"], replace(RULES[0], max_frames=f, video_max_pixels=3136))
    assert bounded.size_bytes() <= 2.5 * entry_bytes and len(list(bounded.root.glob("*.npz"))) >= 1
    entry = one.entry_path(videos["long_gop"], RULES[0])
    entry.write_bytes(entry.read_bytes()[:100])  # damaged on disk
    calls = _decodes(monkeypatch)
    video = one.load(videos["long_gop"], RULES[0])
    assert len(calls) == 1 and _same(video, FrameCache(tmp_path / "c3", 1 << 30).load(videos["long_gop"], RULES[0]))


def _read_many(args) -> list[bytes]:
    root, path, n = args
    cache = FrameCache(root, 1 << 30)
    out = []
    for i in range(n):
        rules = RULES[i % 2]
        out.append(cache.load(path, rules).frames.numpy().tobytes())
        if i % 3 == 0:
            for e in cache.root.glob("*.npz"):  # another process's eviction under our feet
                e.unlink(missing_ok=True)
    return out


def test_concurrent_processes_read_whole_entries(videos, tmp_path):
    expected = [
        read_video(videos["short_gop"], max_frames=r.max_frames, min_pixels=3136, max_pixels=7056)
        .frames.numpy()
        .tobytes()
        for r in RULES[:2]
    ]
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with ProcessPoolExecutor(2) as pool:
        results = list(pool.map(_read_many, [(tmp_path / "shared", videos["short_gop"], 6)] * 2))
    for out in results:
        assert out == [expected[i % 2] for i in range(6)]


def test_the_report_names_the_protocol_flags_mixed_ones_and_gives_vsibench_both_ways():
    from videor1.eval import render_eval_report

    def metrics(model, label):
        vsi = {
            "score": 40.0,
            "accuracy": 50.0,
            "mra": 30.0,
            "tasks": {"a": 50.0, "b": 30.0},
            "failed": 0,
            "unscorable_rows": [{"problem_id": 9, "error": "regression solution 'x' is not a number"}],
        }
        return {
            "model": model,
            "protocol": {"label": label},
            "frames": {
                "16": {
                    "vsibench": vsi,
                    "mmvu": {"score": None, "missing": "benchmark file /e/eval_mmvu.json does not exist"},
                    "mean": 40.0,
                }
            },
        }

    one = render_eval_report([metrics("base", "reference"), metrics("rl", "reference")])
    assert "| base | reference [1] | 16 |" in one and "[1] reference" in one and "different protocols" not in one
    assert "| base | reference [1] | 16 | 40.0 (2) | 50.0 | 30.0 |" in one  # VSI-Bench both ways
    assert "missing" in one.split("| base")[1].splitlines()[0] and "eval_mmvu.json does not exist" in one
    assert "problem 9: regression solution 'x' is not a number" in one
    mixed = render_eval_report([metrics("base", "reference"), metrics("rl", "reference, max_new_tokens=128")])
    assert "| rl | reference [2] |" in mixed and "[2] reference, max_new_tokens=128" in mixed
    assert "under 2 different protocols" in mixed
