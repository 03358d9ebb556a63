"""CoT teachers, the resumable CoT runner and every filter rule."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from videor1.cot import (
    SPOILS,
    FilterConfig,
    ModelTeacher,
    ScriptedTeacher,
    TeacherOutput,
    apply_filter,
    generate_cot,
    repeated_ngram_share,
    row_key,
)
from videor1.generation import SamplingConfig, TransformersBackend
from videor1.media import MediaRules
from videor1.models import load_model, load_processor
from videor1.store import ResultStore

RULES = MediaRules(
    max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056
)
GOOD = "<think>Let me think. The square starts on the left and ends on the right, so it moves right. Let me check: yes.</think>\n<answer>B</answer>"


def mc_row(completion=GOOD, **extra):
    return {
        "problem_id": 1,
        "data_source": "s/x",
        "problem_type": "multiple choice",
        "options": ["A. left", "B. right"],
        "solution": "<answer>B</answer>",
        "completion": completion,
        **extra,
    }


def removed_by(rows, cfg=None):
    result = apply_filter(rows, cfg or FilterConfig())
    return {name: r["removed"] for name, r in result.metrics["rules"].items() if r["removed"]}, result


class TestFilterRules:
    def test_a_good_row_is_kept_with_process_and_answer(self):
        removed, result = removed_by([mc_row()])
        assert removed == {} and result.metrics["kept"] == 1 and result.metrics["kept_share"] == 1.0
        kept = result.kept[0]
        assert kept["process"].startswith("<think>Let me think.") and kept["process"].endswith("</think>")
        assert kept["teacher_answer"] == "B"

    @pytest.mark.parametrize(
        "completion",
        [
            GOOD.replace("</think>", ""),  # think never closed
            GOOD.split("\n", 1)[1],  # no think block
            GOOD + "\n<answer>B</answer>",  # two answer blocks
            "<answer>B</answer>\n" + GOOD.split("\n")[0],  # answer before think
            "Sure! " + GOOD,  # text before
            GOOD[:50],  # truncated
            "<think><think>x</think></think><answer>B</answer>",  # nested think
        ],
    )
    def test_format(self, completion):
        assert removed_by([mc_row(completion)])[0] == {"format": 1}

    def test_option_letter(self):
        assert removed_by([mc_row(GOOD.replace("<answer>B", "<answer>C"))])[0] == {"option_letter": 1}

    @pytest.mark.parametrize("answer", ["about four", "4 squares", "nan"])
    def test_numeric(self, answer):
        row = {
            **mc_row(GOOD.replace("<answer>B", f"<answer>{answer}")),
            "problem_type": "numerical",
            "options": [],
            "solution": "<answer>4</answer>",
        }
        assert removed_by([row])[0] == {"numeric": 1}

    def test_accuracy_uses_the_training_reward_threshold(self):
        assert removed_by([mc_row(GOOD.replace("<answer>B", "<answer>A"))])[0] == {"accuracy": 1}
        # free-form: ROUGE mean F of "a red square" vs "a red circle" = (2/3 + 1/2 + 2/3) / 3 = 0.61 > 0.6 -> kept
        free = {
            **mc_row(GOOD.replace("<answer>B", "<answer>a red square")),
            "problem_type": "free-form",
            "options": [],
            "solution": "<answer>a red circle</answer>",
        }
        assert removed_by([free])[0] == {}
        assert removed_by([free], FilterConfig(min_accuracy=0.7))[0] == {"accuracy": 1}

    def test_length(self):
        assert removed_by([mc_row("<think>It is B.</think><answer>B</answer>")])[0] == {"length": 1}
        long = "<think>" + " ".join(f"w{i}" for i in range(500)) + "</think><answer>B</answer>"
        assert removed_by([mc_row(long)])[0] == {"length": 1}
        assert removed_by([mc_row(long)], FilterConfig(max_words=None))[0] == {}

    def test_repetition(self):
        loop = "<think>Let me think. " + "The square is on the left side. " * 10 + "So B.</think><answer>B</answer>"
        assert repeated_ngram_share(loop, 4) > 0.5 and repeated_ngram_share(GOOD, 4) == 0.0
        assert removed_by([mc_row(loop)])[0] == {"repetition": 1}
        assert removed_by([mc_row(loop)], FilterConfig(max_repeated_ngram_share=None))[0] == {}

    def test_a_row_failing_several_rules_is_removed_once_and_counted_under_each(self):
        bad = mc_row("<think>It is C.</think><answer>C</answer>")  # bad letter, wrong, too short
        result = apply_filter([bad, mc_row()], FilterConfig())
        rules = result.metrics["rules"]
        assert rules["option_letter"]["removed"] == 1 and rules["accuracy"]["removed"] == 0
        assert rules["option_letter"]["failed"] == rules["accuracy"]["failed"] == rules["length"]["failed"] == 1
        assert sum(r["removed"] for r in rules.values()) == 1 and result.metrics["kept"] == 1
        assert rules["option_letter"]["examples"][0]["problem_id"] == 1


@pytest.fixture(scope="module")
def facts_rows(synth_data):
    rows = json.loads((synth_data / "train.json").read_text())
    return [{**r, "media_root": str(synth_data)} for r in rows]


def test_scripted_teacher_spoils_what_the_filter_then_removes(synth_data, facts_rows):
    shares = {name: 1 / len(SPOILS) / 2 for name in SPOILS}  # half the rows spoiled, every kind
    rows = facts_rows * 1
    teacher = ScriptedTeacher(synth_data / "facts.jsonl", seed=3, spoil=shares)
    outputs = teacher.complete(rows)
    assert outputs == teacher.complete(rows)  # deterministic
    table = [{**r, "completion": o.completion, "teacher_spoil": o.meta["spoil"]} for r, o in zip(rows, outputs)]
    result = apply_filter(table, FilterConfig())
    expected_rule = {
        "wrong_answer": "accuracy",
        "malformed_tags": "format",
        "truncated": "format",
        "looping": "repetition",
        "too_short": "length",
        "bad_option": "option_letter",
        "non_numeric": "numeric",
    }
    for rule, by_spoil in result.metrics["removed_by_spoil"].items():
        for spoil in by_spoil:
            assert expected_rule[spoil] == rule  # every removal is a spoiled row, caught by the rule meant for it
    assert result.metrics["kept"] == sum(o.meta["spoil"] is None for o in outputs)


def test_scripted_teacher_refuses_rows_without_facts(synth_data, facts_rows):
    teacher = ScriptedTeacher(synth_data / "facts.jsonl")
    real = {**facts_rows[0], "problem_id": 10_000, "data_source": "LLaVA-Video-178K/x"}
    out = teacher.complete([facts_rows[0], real])
    assert out[0].completion and out[1].completion is None and "no ground-truth facts" in out[1].error


class FlakyTeacher:
    """A scripted teacher that dies like a killed process after some batches."""

    def __init__(self, inner, fail_after_batches=None):
        self.inner, self.fail_after, self.batches, self.rows = inner, fail_after_batches, 0, 0

    def config(self):
        return self.inner.config()

    def complete(self, rows):
        if self.fail_after is not None and self.batches >= self.fail_after:
            raise KeyboardInterrupt("killed")
        self.batches += 1
        self.rows += len(rows)
        return self.inner.complete(rows)


def test_cot_resumes_without_regenerating_finished_rows(synth_data, facts_rows, tmp_path):
    scripted = ScriptedTeacher(synth_data / "facts.jsonl")
    store = lambda: ResultStore(tmp_path / "log.jsonl", "fp", key="row_key")  # noqa: E731
    first = FlakyTeacher(scripted, fail_after_batches=3)
    with pytest.raises(KeyboardInterrupt):
        generate_cot(facts_rows, first, store(), batch_size=4)
    assert first.rows == 12 and len((tmp_path / "log.jsonl").read_text().splitlines()) == 12

    second = FlakyTeacher(scripted)
    records, generated = generate_cot(facts_rows, second, store(), batch_size=4)
    assert generated == second.rows == len(facts_rows) - 12
    assert [r["row_key"] for r in records] == [row_key(r) for r in facts_rows]

    changed = [{**facts_rows[0], "problem": "A different question?"}] + facts_rows[1:]  # one row's content changed
    third = FlakyTeacher(scripted)
    _, generated = generate_cot(changed, third, store(), batch_size=4)
    assert generated == third.rows == 1


@pytest.fixture(scope="module")
def model_teacher(tiny_model_dir):
    backend = TransformersBackend(load_model(tiny_model_dir), load_processor(tiny_model_dir), batch_size=4)
    return ModelTeacher(
        backend,
        backend.processor,
        sampling=SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=16),
        rules=RULES,
        max_prompt_tokens=2048,
        model_signature={},
        backend_name="transformers",
    )


def test_transformers_teacher_on_the_tiny_model(model_teacher, facts_rows, tmp_path):
    rows = [facts_rows[0], facts_rows[-1], facts_rows[1]]  # video, image, video
    media = tmp_path / "media"
    shutil.copytree(rows[2]["media_root"], media)
    (media / rows[2]["path"]).write_bytes(b"\x00" * 100)  # unreadable
    rows[2] = {**rows[2], "media_root": str(media)}
    out = model_teacher.complete(rows)
    assert [o.completion is not None for o in out] == [True, True, False]
    assert out[0].meta["completion_tokens"] <= 16 and "unreadable media" in out[2].error
    assert Path(rows[2]["path"]).name in out[2].error


@pytest.mark.parametrize("family", ["qwen3_vl", "qwen3_5"])
def test_the_transformers_teacher_on_the_other_families(family, family_model_dirs, facts_rows):
    """The CoT teacher on a tiny Qwen3-VL and Qwen3.5: the profile's 28-px rules become the family's 32-px ones where
    the processor meets the media, and a video and an image row are completed."""
    root = family_model_dirs[family]
    backend = TransformersBackend(load_model(root), load_processor(root), batch_size=4)
    teacher = ModelTeacher(
        backend,
        backend.processor,
        sampling=SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=8),
        rules=RULES,
        max_prompt_tokens=2048,
        model_signature={},
        backend_name="transformers",
    )
    assert teacher.rules.factor == 32 and RULES.factor == 28
    out = teacher.complete([facts_rows[0], facts_rows[-1]])  # a video, an image
    assert [o.completion is not None for o in out] == [True, True], [o.error for o in out]


def test_over_long_prompt_is_skipped_with_its_length(model_teacher, facts_rows):
    short = ModelTeacher(
        model_teacher.backend,
        model_teacher.processor,
        sampling=model_teacher.sampling,
        rules=RULES,
        max_prompt_tokens=50,
        model_signature={},
        backend_name="transformers",
    )
    [out] = short.complete(facts_rows[:1])
    assert out.completion is None and out.error.startswith("prompt too long:") and "> 50" in out.error


class BreaksOnImages:
    """A real backend that raises ``message`` for any batch holding an image."""

    def __init__(self, inner, message: str):
        self.inner, self.message = inner, message

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, requests, sampling):
        if any(r.medium is not None and r.medium.data_type == "image" for r in requests):
            raise RuntimeError(self.message)
        return self.inner.generate(requests, sampling)


def test_a_teacher_error_on_one_row_does_not_stop_the_others(model_teacher, facts_rows):
    backend = BreaksOnImages(model_teacher.backend, "CUDA error: device-side assert triggered")
    teacher = ModelTeacher(
        backend,
        model_teacher.processor,
        sampling=model_teacher.sampling,
        rules=RULES,
        max_prompt_tokens=2048,
        model_signature={},
        backend_name="transformers",
    )
    out = teacher.complete([facts_rows[0], facts_rows[-1], facts_rows[1]])
    assert [o.completion is not None for o in out] == [True, False, True]
    assert out[1].error == "teacher failed: RuntimeError: CUDA error: device-side assert triggered"


def test_teacher_output_defaults():
    assert TeacherOutput("x").error is None and TeacherOutput("x").meta == {}


def test_a_row_the_teacher_failed_on_is_retried_on_later_runs_up_to_the_cap(model_teacher, facts_rows, tmp_path):
    rows = [facts_rows[0], facts_rows[-1], facts_rows[1]]  # video, image, video
    teacher = ModelTeacher(
        BreaksOnImages(model_teacher.backend, "CUDA out of memory"),
        model_teacher.processor,
        sampling=model_teacher.sampling,
        rules=RULES,
        max_prompt_tokens=2048,
        model_signature={},
        backend_name="transformers",
    )
    store = lambda: ResultStore(tmp_path / "log.jsonl", "fp", key="row_key")  # noqa: E731
    attempts = []
    for _ in range(4):
        records, generated = generate_cot(rows, teacher, store(), batch_size=3, max_attempts=3)
        attempts.append((generated, [r["attempts"] for r in records]))
        assert records[1]["completion"] is None and records[1]["retry"] and "CUDA out of memory" in records[1]["error"]
        assert records[0]["completion"] is not None and records[2]["completion"] is not None
    # run 1 does all three; runs 2 and 3 only the failed image row; after 3 attempts it is settled
    assert attempts == [(3, [1, 1, 1]), (1, [1, 2, 1]), (1, [1, 3, 1]), (0, [1, 3, 1])]


@pytest.mark.parametrize("link", ["hardlink", "symlink"])
def test_a_log_linked_from_the_dvc_cache_is_copied_before_it_is_appended_to(tmp_path, link):
    """DVC links committed outputs to read-only cache files; resuming a log must not write through the link."""
    cached = tmp_path / "cache" / "ab12"
    cached.parent.mkdir()
    cached.write_text('{"row_key": "a", "text": "done"}\n')
    cached.chmod(0o444)
    log = tmp_path / "data" / "log.jsonl"
    log.parent.mkdir()
    os.link(cached, log) if link == "hardlink" else log.symlink_to(cached)
    (tmp_path / "data" / "log.jsonl.meta.json").write_text('{"fingerprint": "fp"}')
    store = ResultStore(log, "fp", key="row_key")
    assert list(store.load()) == ["a"]  # the finished row is reused ...
    store.append([{"row_key": "b", "text": "new"}])
    assert cached.read_text() == '{"row_key": "a", "text": "done"}\n'  # ... and the cache's copy is untouched
    assert not log.is_symlink() and log.stat().st_nlink == 1
    assert [json.loads(line)["row_key"] for line in log.read_text().splitlines()] == ["a", "b"]
