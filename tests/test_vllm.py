"""vLLM (its CPU build here) against the transformers path: the same inputs, the same greedy outputs, distinct
and reproducible samples, weight sync that makes vLLM sample from the updated policy, and the CoT teacher.

The engine runs one model throughout: a tiny Qwen2.5-VL whose weights are redrawn with unit-variance fan-in
scaling. A 0.02-std random model answers every prompt with the same newline; this one continues each prompt
differently, so a different pixel, temporal position or weight anywhere shows up in its greedy tokens.
"""

from __future__ import annotations

import copy
import json

import pytest
import torch

from videor1.cot import ModelTeacher, TeacherDied, generate_cot
from videor1.eval import EvalRun, ResultStore, evaluate_rows
from videor1.generation import GenerationRequest, PromptTooLong, SamplingConfig, TransformersBackend, processor_inputs
from videor1.generation.inputs import chat_text
from videor1.media import MediaRules, load_medium
from videor1.models import VISION_TOKENS, load_model, load_processor, save_model_dir
from videor1.prompts import user_message
from videor1.rl import RLConfig, RLTrainer, completion_logprobs
from videor1.rl.rollout import distinct_completions, rollout

from .conftest import redraw

RULES = MediaRules(
    max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056
)
BENCHMARKS = ["mvbench", "tempcompass", "videomme", "videommmu", "vsibench", "mmvu"]
GREEDY = SamplingConfig(temperature=0.0, max_new_tokens=24)

vllm_engine = pytest.importorskip("videor1.generation.vllm_engine")


@pytest.fixture(scope="module")
def sharp_dir(tiny_model_dir, tmp_path_factory):
    model = load_model(tiny_model_dir)
    redraw(model, seed=1)
    target = tmp_path_factory.mktemp("models") / "sharp"
    save_model_dir(model, load_processor(tiny_model_dir), target)
    return target


@pytest.fixture(scope="module")
def engine(sharp_dir):
    backend = vllm_engine.VLLMBackend(str(sharp_dir), max_model_len=2048, dtype="float32", max_num_seqs=64)
    yield backend
    del backend


@pytest.fixture(scope="module")
def hf(sharp_dir):
    return TransformersBackend(load_model(sharp_dir), load_processor(sharp_dir), batch_size=16)


@pytest.fixture(scope="module")
def train_rows(synth_data):
    return [{**r, "media_root": str(synth_data)} for r in json.loads((synth_data / "train.json").read_text())]


def requests_for(rows, root):
    return [GenerationRequest([user_message(r)], load_medium(root / r["path"], r["data_type"], RULES)) for r in rows]


def test_prompt_token_ids_are_identical_on_images_and_videos(engine, hf, synth_data, train_rows):
    requests = requests_for(train_rows, synth_data)
    assert {r.medium.data_type for r in requests} == {"image", "video"}
    theirs = engine.prompt_token_ids(requests)
    ours = [
        processor_inputs(hf.processor, [chat_text(hf.processor, r.messages, add_generation_prompt=True)], [r.medium])[
            "input_ids"
        ][0].tolist()
        for r in requests
    ]
    assert sum(a == b for a, b in zip(theirs, ours)) == len(requests)  # 100 %


def test_vllm_positions_are_the_reference_rule_that_transformers_5_drifts_from(
    engine, hf, synth_data, train_rows, long_clip
):
    """The M-RoPE positions vLLM's prefill runs with equal ours (the original Qwen rule); transformers' own differ
    for a video (text after it restarts inside the video's temporal range) and agree for an image. The long clip's
    4.575 s per temporal patch is not whole: vLLM's float64 ``t · s · tokens_per_second`` and ours agree on it."""
    model = engine.engine_model()
    seen = []
    forward = model.forward

    def recording_forward(input_ids, positions, *args, **kwargs):
        seen.append(positions.clone())
        return forward(input_ids, positions, *args, **kwargs)

    model.forward = recording_forward
    try:
        rows = [next(r for r in train_rows if r["data_type"] == t) for t in ("video", "image")]
        long_rules = MediaRules(max_frames=16, video_min_pixels=3136, video_max_pixels=3136)
        long_request = GenerationRequest([user_message(rows[0])], load_medium(long_clip, "video", long_rules))
        for row, request in [(row, requests_for([row], synth_data)[0]) for row in rows] + [(rows[0], long_request)]:
            seen.clear()
            engine.llm.reset_prefix_cache()  # else a cached prefix skips most of the prompt's forward
            engine.generate([request], SamplingConfig(temperature=0.0, max_new_tokens=1))
            inputs = processor_inputs(
                hf.processor, [chat_text(hf.processor, request.messages, add_generation_prompt=True)], [request.medium]
            )
            args = (
                inputs["input_ids"],
                inputs["mm_token_type_ids"],
                inputs.get("image_grid_thw"),
                inputs.get("video_grid_thw"),
                inputs.get("second_per_grid_ts"),
                inputs["attention_mask"],
            )
            ours, _ = hf.model.model.get_rope_index(*args)
            stock, _ = type(hf.model.model).get_rope_index(hf.model.model, *args)
            n = inputs["input_ids"].shape[1]
            assert torch.equal(seen[0][:, :n], ours[:, 0]), row["data_type"]
            assert torch.equal(stock, ours) == (row["data_type"] == "image")
            if request is long_request:  # the last temporal patch sits at 7 · 4.575 · 2 = 64.05: bf16 seconds give 63
                video = ours[0, 0][inputs["mm_token_type_ids"][0] == 2]
                assert (
                    inputs["second_per_grid_ts"].tolist() == [pytest.approx(4.575)]
                    and int(video.max() - video.min()) == 64
                )
    finally:
        model.forward = forward


def test_greedy_outputs_match_transformers_on_the_benchmarks(engine, hf, synth_data, tmp_path):
    """The eval stage's two backends, row by row, at both frame counts of the tiny profile: every one of the 48
    greedy outputs is the same text of the same tokens (fp32 on both, vLLM's CPU build: no tolerance is needed)."""
    differ, total = [], 0
    for frames in (4, 8):
        run = EvalRun(
            media_root=synth_data,
            rules=MediaRules(**{**RULES.__dict__, "max_frames": frames}),
            sampling=GREEDY,
            batch_size=16,
        )
        for bench in BENCHMARKS:
            rows = json.loads((synth_data / f"eval_{bench}.json").read_text())
            a, _ = evaluate_rows(rows, engine, run, ResultStore(tmp_path / f"v-{bench}@{frames}.jsonl", "v"))
            b, _ = evaluate_rows(rows, hf, run, ResultStore(tmp_path / f"t-{bench}@{frames}.jsonl", "t"))
            assert [x["problem_id"] for x in a] == [y["problem_id"] for y in b] == [r["problem_id"] for r in rows]
            differ += [
                (bench, frames, x["problem_id"], x["output"], y["output"])
                for x, y in zip(a, b)
                if (x["output"], x["completion_tokens"]) != (y["output"], y["completion_tokens"])
            ]
            total += len(rows)
    assert total == 2 * 6 * 4 and differ == [], f"{len(differ)} of {total} rows differ: {differ}"


def test_group_samples_differ_and_the_seed_reproduces_them(engine, synth_data, train_rows):
    rows = [next(r for r in train_rows if r["data_type"] == t) for t in ("video", "image")]
    media = [load_medium(synth_data / r["path"], r["data_type"], RULES) for r in rows]
    sampling = SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=16)
    kwargs = dict(num_generations=4, temporal=True, sampling=sampling)
    groups = rollout(engine, engine.processor, rows, media, seed=7, **kwargs)
    assert [len(g.ordered) for g in groups] == [4, 4] and [len(g.shuffled) for g in groups] == [2, 0]
    assert all(distinct_completions(g) > 1 for g in groups)  # one seed for all gave 1 distinct of 4
    again = rollout(engine, engine.processor, rows, media, seed=7, **kwargs)
    assert [[c.token_ids for c in g.ordered + g.shuffled] for g in groups] == [
        [c.token_ids for c in g.ordered + g.shuffled] for g in again
    ]
    other = rollout(engine, engine.processor, rows, media, seed=8, **kwargs)
    assert [[c.token_ids for c in g.ordered] for g in groups] != [[c.token_ids for c in g.ordered] for g in other]


def test_seeded_sampling_over_more_tokens_than_one_step_takes(engine, synth_data, train_rows):
    """48 seeded requests of ~300 prompt tokens: more than a step's token budget, so prefills queue over steps
    (on vLLM's CPU build a split prefill of a seeded request crashed it)."""
    requests = requests_for(train_rows[:8], synth_data) * 6
    out = engine.generate(requests, SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=8, seed=3))
    assert len(out) == 48 and all(len(c[0].token_ids) > 0 for c in out)


def test_vision_tokens_are_never_sampled_and_sampling_knobs_are_explicit(engine, hf, synth_data, train_rows):
    params = engine.sampling_params(SamplingConfig(temperature=1.0, top_p=0.9, max_new_tokens=4), seed=0)
    assert params.repetition_penalty == 1.0 and params.top_k in (0, -1) and params.top_p == 0.9
    assert params.bad_words == list(VISION_TOKENS)
    vision_ids = [hf.processor.tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS]
    policy = copy.deepcopy(hf.model)
    with torch.no_grad():  # tied embeddings: these rows are also the output rows; make the vision tokens the top logits
        policy.get_input_embeddings().weight[vision_ids] *= 50
    requests = requests_for(train_rows[:2] + train_rows[-2:], synth_data)
    engine.sync_weights(policy.state_dict().items())
    try:
        ours = TransformersBackend(policy, hf.processor, batch_size=4).generate(requests, GREEDY)
        theirs = engine.generate(requests, GREEDY)
        assert [c[0].token_ids for c in ours] == [c[0].token_ids for c in theirs]
        assert not any(t in vision_ids for c in theirs for t in c[0].token_ids)
    finally:
        engine.sync_weights(hf.model.state_dict().items())


def test_an_over_long_prompt_is_refused_before_the_batch_and_skipped_in_eval(engine, synth_data, tmp_path):
    rows = json.loads((synth_data / "eval_mvbench.json").read_text())
    long_row = {**rows[0], "problem_id": "long", "problem": "why " * 3000}
    with pytest.raises(PromptTooLong, match="prompt too long"):
        engine.generate(requests_for([long_row], synth_data), GREEDY)
    run = EvalRun(media_root=synth_data, rules=RULES, sampling=GREEDY, batch_size=8)
    results, _ = evaluate_rows(rows[:2] + [long_row], engine, run, ResultStore(tmp_path / "long.jsonl", "x"))
    assert [r["output"] is None for r in results] == [False, False, True]
    assert (
        results[2]["error"].startswith("prompt too long:")
        and f"> {2048 - GREEDY.max_new_tokens}" in results[2]["error"]
    )


def test_weight_sync_makes_vllm_sample_from_the_updated_policy(engine, hf, sharp_dir, synth_data, train_rows):
    """After a sync vLLM's greedy tokens are the updated transformers policy's, and so are their log-probs."""
    rows = train_rows[:3] + train_rows[-3:]
    requests = requests_for(rows, synth_data)
    before = engine.generate(requests, GREEDY)
    policy = copy.deepcopy(hf.model)
    redraw(policy, seed=2)  # as different as an update can be: any stale weight, cache or embedding would show
    engine.sync_weights(policy.state_dict().items())
    try:
        after = engine.generate(requests, GREEDY)
        expected = TransformersBackend(policy, hf.processor, batch_size=8).generate(requests, GREEDY)
        assert [c[0].token_ids for c in after] == [c[0].token_ids for c in expected]
        assert sum(a[0].token_ids != b[0].token_ids for a, b in zip(after, before)) == len(rows)
        # the log-probs vLLM sampled with are the training forward's (the importance ratio starts at 1)
        from vllm import SamplingParams

        prompts = [
            {
                "prompt": chat_text(engine.processor, r.messages, add_generation_prompt=True),
                "multi_modal_data": vllm_engine.multi_modal_data(engine.processor, r.medium),
            }
            for r in requests[:2]
        ]
        outs = engine.llm.generate(
            prompts, SamplingParams(temperature=1.0, max_tokens=12, seed=0, logprobs=0), use_tqdm=False
        )
        for request, out in zip(requests[:2], outs):
            sample = out.outputs[0]
            vllm_logp = torch.tensor([lp[t].logprob for lp, t in zip(sample.logprobs, sample.token_ids)])
            inputs = processor_inputs(
                hf.processor, [chat_text(hf.processor, request.messages, add_generation_prompt=True)], [request.medium]
            )
            with torch.no_grad():
                ours, _ = completion_logprobs(
                    policy, inputs, [list(sample.token_ids)], hf.processor.tokenizer.pad_token_id
                )
            assert torch.allclose(ours[0], vllm_logp, atol=2e-4), (ours[0] - vllm_logp).abs().max()
    finally:
        engine.sync_weights(hf.model.state_dict().items())
    assert [c[0].token_ids for c in engine.generate(requests, GREEDY)] == [c[0].token_ids for c in before]


def test_a_resumed_rl_run_syncs_before_its_first_rollout(engine, hf, synth_data, train_rows, tmp_path):
    cfg = RLConfig(
        steps=2,
        prompts_per_step=2,
        num_generations=4,
        max_completion_length=8,
        max_prompt_length=1024,
        learning_rate=3e-2,
        len_min=2,
        len_max=8,
        save_steps=1,
        seed=0,
    )
    policy = copy.deepcopy(hf.model)
    trainer = RLTrainer(
        policy,
        copy.deepcopy(hf.model).requires_grad_(False),
        hf.processor,
        engine,
        train_rows,
        RULES,
        cfg,
        tmp_path,
        log=lambda _: None,
    )
    records = trainer.train()
    assert [r["step"] for r in records] == [1, 2] and all(r["distinct_completions"] > 1 for r in records)
    engine.sync_weights(hf.model.state_dict().items())  # as a fresh engine would start: from the SFT weights
    resumed_policy = copy.deepcopy(hf.model)
    resumed = RLTrainer(
        resumed_policy,
        copy.deepcopy(hf.model).requires_grad_(False),
        hf.processor,
        engine,
        train_rows,
        RULES,
        cfg,
        tmp_path,
        log=lambda _: None,
    )
    try:
        resumed.train()  # nothing left to train: it only resumes, and syncs
        requests = requests_for(train_rows[:4], synth_data)
        expected = TransformersBackend(resumed_policy, hf.processor, batch_size=8).generate(requests, GREEDY)
        assert [c[0].token_ids for c in engine.generate(requests, GREEDY)] == [c[0].token_ids for c in expected]
        assert not torch.equal(next(resumed_policy.parameters()), next(hf.model.parameters()))
    finally:
        engine.sync_weights(hf.model.state_dict().items())


def test_the_vllm_teacher_completes_rows_and_a_dead_engine_stops_the_run(engine, train_rows, tmp_path):
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_new_tokens=16)
    teacher = ModelTeacher(
        engine,
        engine.processor,
        sampling=sampling,
        rules=RULES,
        max_prompt_tokens=2048 - 16,
        model_signature={},
        backend_name="vllm",
    )
    rows = train_rows[:6]
    records, generated = generate_cot(
        rows, teacher, ResultStore(tmp_path / "cot.jsonl", "fp", key="row_key"), batch_size=3
    )
    assert generated == 6 and all(r["completion"] is not None and r["attempts"] == 1 for r in records)

    class DiesAfterOneBatch:
        """The real engine for one batch, then what vLLM raises once its engine core is gone."""

        def __init__(self, inner):
            self.inner, self.processor, self.calls = inner, inner.processor, 0

        def prompt_limit(self, sampling):
            return self.inner.prompt_limit(sampling)

        def generate(self, requests, sampling):
            self.calls += 1
            if self.calls > 1:
                from vllm.v1.engine.exceptions import EngineDeadError

                raise EngineDeadError()
            return self.inner.generate(requests, sampling)

    dying = ModelTeacher(
        DiesAfterOneBatch(engine),
        engine.processor,
        sampling=sampling,
        rules=RULES,
        max_prompt_tokens=2032,
        model_signature={},
        backend_name="vllm",
    )
    store = ResultStore(tmp_path / "dying.jsonl", "fp", key="row_key")
    with pytest.raises(TeacherDied, match="engine died"):
        generate_cot(rows, dying, store, batch_size=3)
    kept = [json.loads(line) for line in (tmp_path / "dying.jsonl").read_text().splitlines()]
    assert len(kept) == 3 and all(
        k["completion"] is not None for k in kept
    )  # the first batch, nothing stored as failed
    records, generated = generate_cot(
        rows, teacher, ResultStore(tmp_path / "dying.jsonl", "fp", key="row_key"), batch_size=3
    )
    assert generated == 3 and all(r["completion"] is not None for r in records)
