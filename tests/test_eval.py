"""Generation backends and the resumable eval runner on the tiny model and synthetic benchmarks."""

from __future__ import annotations

import json
import shutil

import pytest
import torch

from videor1.eval import EvalRun, ResultStore, evaluate_rows, run_fingerprint
from videor1.generation import GenerationRequest, SamplingConfig, TransformersBackend
from videor1.generation.hf import vision_token_ids
from videor1.media import MediaRules, load_medium
from videor1.models import load_model, load_processor, model_signature
from videor1.prompts import prompt_text, user_message

RULES = MediaRules(
    max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056
)
FAST = SamplingConfig(max_new_tokens=8)


@pytest.fixture(scope="module")
def backend(tiny_model_dir):
    return TransformersBackend(load_model(tiny_model_dir), load_processor(tiny_model_dir), batch_size=4)


def eval_rows(synth_data, bench="mvbench"):
    return json.loads((synth_data / f"eval_{bench}.json").read_text())


class CountingBackend:
    """Wraps a backend, counts the rows it generates for, and can fail like a killed process after some batches."""

    def __init__(self, inner, fail_after_batches: int | None = None):
        self.inner, self.fail_after, self.rows, self.batches = inner, fail_after_batches, [], 0

    def __getattr__(self, name):  # processor, prompt_limit: the wrapped backend's
        return getattr(self.inner, name)

    def generate(self, requests, sampling):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.batches += 1
        self.rows += [r.messages[0]["content"][1]["text"] for r in requests]
        return self.inner.generate(requests, sampling)


def test_prompt_has_options_instruction_and_type_suffix():
    mc = {
        "problem": "Which way?",
        "problem_type": "multiple choice",
        "options": ["A. left", "B. right"],
        "data_type": "video",
    }
    text = prompt_text(mc)
    assert text.startswith("Which way?Options:\nA. left\nB. right\n\nPlease think about this question")
    assert "<think> </think>" in text and text.endswith(
        "single option letter (e.g., A, B, C, D, etc.) within the <answer> </answer> tags."
    )
    reg = {"problem": "How big?", "problem_type": "regression", "options": [], "data_type": "image"}
    assert prompt_text(reg).startswith("How big?\nPlease think") and "Options" not in prompt_text(reg)
    assert user_message(reg)["content"][0] == {"type": "image"}
    with pytest.raises(ValueError, match="unknown problem_type"):
        prompt_text({**reg, "problem_type": "essay"})


def test_backend_batches_image_and_video_and_never_samples_vision_tokens(backend, synth_data):
    train = json.loads((synth_data / "train.json").read_text())
    rows = [
        next(r for r in train if r["data_type"] == "video"),
        next(r for r in train if r["data_type"] == "image"),
    ] * 2
    requests = [
        GenerationRequest([user_message(r)], load_medium(synth_data / r["path"], r["data_type"], RULES)) for r in rows
    ]
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=24, n=3, seed=1)
    out = backend.generate(requests, sampling)
    assert [len(c) for c in out] == [3, 3, 3, 3]
    banned = set(vision_token_ids(backend.tokenizer))
    for comps in out:
        for c in comps:
            assert not banned & set(c.token_ids)
            assert len(c.token_ids) <= 24 and (c.finished == (c.token_ids[-1] in backend.end_ids))
    again = backend.generate(requests, sampling)
    assert [[c.token_ids for c in cs] for cs in again] == [[c.token_ids for c in cs] for cs in out]  # seeded


def test_backend_output_depends_on_the_frames(backend, synth_data):
    row = eval_rows(synth_data)[0]
    medium = load_medium(synth_data / row["path"], "video", RULES)
    dark = type(medium)(
        "video",
        video=type(medium.video)(
            torch.zeros_like(medium.video.frames), medium.video.sample_fps, medium.video.indices, medium.video.info
        ),
    )
    inputs = [GenerationRequest([user_message(row)], m) for m in (medium, dark)]
    from videor1.generation import chat_text, processor_inputs

    texts = [chat_text(backend.processor, r.messages, add_generation_prompt=True) for r in inputs]
    batch = processor_inputs(backend.processor, texts, [r.medium for r in inputs])
    assert batch["second_per_grid_ts"].tolist() == [1.25, 1.25] and "mm_token_type_ids" in batch  # 2 frames / 1.6 fps
    with torch.no_grad():
        logits = backend.model(**batch).logits[:, -1]
    assert not torch.allclose(logits[0], logits[1])


def make_run(synth_data, batch_size=2):
    return EvalRun(media_root=synth_data, rules=RULES, sampling=FAST, batch_size=batch_size, media_workers=2)


def test_resume_after_a_kill_does_not_regenerate_finished_rows(backend, synth_data, tiny_model_dir, tmp_path):
    rows = eval_rows(synth_data) + eval_rows(synth_data, "tempcompass")
    for i, r in enumerate(rows):
        r["problem_id"] = i  # two files merged: keep ids unique
    run = make_run(synth_data)
    fp = run_fingerprint(run, rows, model_signature(tiny_model_dir), "transformers")
    path = tmp_path / "preds.jsonl"

    first = CountingBackend(backend, fail_after_batches=2)
    with pytest.raises(KeyboardInterrupt):
        evaluate_rows(rows, first, run, ResultStore(path, fp))
    done_before = path.read_text().splitlines()
    assert len(done_before) == 4 and len(first.rows) == 4
    with path.open("a") as fh:  # a line torn by kill -9 mid-write
        fh.write('{"problem_id": 4, "outp')

    second = CountingBackend(backend)
    results, generated = evaluate_rows(rows, second, run, ResultStore(path, fp))
    assert generated == len(rows) - 4 and len(second.rows) == len(rows) - 4
    lines = path.read_text().splitlines()
    assert lines[:4] == done_before and len(lines) == len(rows)
    assert [r["problem_id"] for r in results] == list(range(len(rows)))

    third = CountingBackend(backend)
    again, generated = evaluate_rows(rows, third, run, ResultStore(path, fp))
    assert generated == 0 and third.rows == [] and again == results


def test_a_changed_configuration_starts_over(backend, synth_data, tmp_path):
    rows = eval_rows(synth_data)[:2]
    run = make_run(synth_data)
    path = tmp_path / "preds.jsonl"
    evaluate_rows(rows, backend, run, ResultStore(path, "fingerprint-1"))
    counting = CountingBackend(backend)
    _, generated = evaluate_rows(rows, counting, run, ResultStore(path, "fingerprint-2"))
    assert generated == 2 and len(counting.rows) == 2 and len(path.read_text().splitlines()) == 2


def test_unreadable_media_is_recorded_not_scored_or_dropped(backend, synth_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(synth_data, data)
    rows = eval_rows(data)[:3]
    (data / rows[1]["path"]).write_bytes(b"not a video")
    rows.append({**rows[0], "problem_id": 99, "path": "./videos/missing.mp4"})
    results, generated = evaluate_rows(rows, backend, make_run(data), ResultStore(tmp_path / "p.jsonl", "fp"))
    assert generated == 4
    assert [r["output"] is None for r in results] == [False, True, False, True]
    assert rows[1]["path"][2:] in results[1]["error"]
    assert "missing.mp4" in results[3]["error"]


def test_repeated_ids_are_refused(backend, synth_data, tmp_path):
    rows = eval_rows(synth_data)[:2]
    rows[1]["problem_id"] = rows[0]["problem_id"]
    with pytest.raises(ValueError, match="repeated"):
        evaluate_rows(rows, backend, make_run(synth_data), ResultStore(tmp_path / "p.jsonl", "fp"))
