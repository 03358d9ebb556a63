"""T-GRPO: reward shaping, group advantages, the policy loss, per-group temporal comparison, log-probs
that see each sample's own frames, and a trainer that resumes where it stopped."""

from __future__ import annotations

import copy
import functools
import json
from dataclasses import replace

import pytest
import torch

from videor1.generation import Completion, TransformersBackend
from videor1.media import MediaRules, load_medium
from videor1.models import load_model, load_processor
from videor1.prompts import user_message
from videor1.rl import (
    RLConfig,
    RLTrainer,
    completion_logprobs,
    data_order,
    group_advantages,
    group_rewards,
    policy_loss,
    shape_rewards,
)
from videor1.rl.rollout import Group, prompt_inputs

T = torch.tensor
RULES = MediaRules(
    max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056
)
FMT1 = T([1.0, 1.0, 1.0, 1.0])
LEN = T([400, 400, 400, 400])


class TestShapeRewards:
    def test_bonus_fires_when_ordered_beats_shuffled(self):
        total, fired = shape_rewards(T([1.0, 1.0, 0.0, 0.0]), FMT1, LEN, T([0.0, 0.0]), len_control=False)
        assert fired and total.tolist() == pytest.approx([2.3, 2.3, 1.0, 1.0])

    def test_no_bonus_when_shuffled_does_as_well(self):
        total, fired = shape_rewards(T([1.0, 0.0, 0.0, 0.0]), FMT1, LEN, T([1.0, 1.0]), len_control=False)
        assert not fired and total.tolist() == [2.0, 1.0, 1.0, 1.0]

    def test_threshold_mu(self):  # p = 0.5; mu * p_shuffled = 0.8 * 0.625 = 0.5 fires (>=), 0.8 * 0.75 = 0.6 does not
        assert shape_rewards(T([1.0, 1.0, 0.0, 0.0]), FMT1, LEN, T([1.0, 0.25]), len_control=False)[1]
        assert not shape_rewards(T([1.0, 1.0, 0.0, 0.0]), FMT1, LEN, T([1.0, 0.5]), len_control=False)[1]
        assert shape_rewards(T([1.0, 1.0, 0.0, 0.0]), FMT1, LEN, T([1.0, 0.5]), mu=0.5, len_control=False)[1]

    def test_accuracy_exactly_0_1_gets_no_bonus(self):
        total, fired = shape_rewards(T([0.1, 0.7, 0.0, 0.0]), FMT1, LEN, T([0.0, 0.0]), len_control=False)
        assert fired and total.tolist() == pytest.approx([1.1, 2.0, 1.0, 1.0])

    def test_no_correct_completion_means_no_bonus(self):
        total, fired = shape_rewards(T([0.0, 0.05, 0.0, 0.0]), FMT1, LEN, T([0.0, 0.0]), len_control=False)
        assert not fired and total.tolist() == pytest.approx([1.0, 1.05, 1.0, 1.0])

    def test_length_window_edges(self):
        lengths = T([319, 320, 512, 513])
        total, _ = shape_rewards(T([1.0, 1.0, 1.0, 1.0]), FMT1, lengths, None)
        assert total.tolist() == pytest.approx([2.0, 2.2, 2.2, 2.0])

    def test_length_bonus_needs_more_than_one_correct(self):
        total, _ = shape_rewards(T([1.0, 0.0, 0.0, 0.0]), FMT1, T([400, 400, 400, 400]), None)
        assert total.tolist() == [2.0, 1.0, 1.0, 1.0]
        total, _ = shape_rewards(T([1.0, 1.0, 0.0, 0.0]), FMT1, T([400, 400, 400, 400]), None)
        assert total.tolist() == pytest.approx([2.2, 2.2, 1.0, 1.0])  # wrong ones get no length bonus

    def test_image_group_has_no_temporal_term(self):
        total, fired = shape_rewards(T([1.0, 1.0, 0.0, 0.0]), FMT1, LEN, None, len_control=False)
        assert not fired and total.tolist() == [2.0, 2.0, 1.0, 1.0]

    def test_switches(self):
        acc, short = T([1.0, 1.0, 0.0, 0.0]), T([330, 330, 330, 330])
        assert shape_rewards(acc, FMT1, short, T([0.0, 0.0]), temporal=False)[0].tolist() == pytest.approx(
            [2.2, 2.2, 1.0, 1.0]
        )
        assert shape_rewards(acc, FMT1, short, T([0.0, 0.0]), len_control=False)[0].tolist() == pytest.approx(
            [2.3, 2.3, 1.0, 1.0]
        )
        assert shape_rewards(acc, T([0.0, 1.0, 0.0, 1.0]), short, T([0.0, 0.0]))[0].tolist() == pytest.approx(
            [1.5, 2.5, 0.0, 1.0]
        )


def test_group_advantages():
    adv = group_advantages(T([1.0, 0.0, 0.0, 0.0, 2.0, 2.0, 2.0, 2.0]), 4)
    # group 1: mean 0.25, unbiased std 0.5; group 2: all equal -> zero
    assert adv[:4].tolist() == pytest.approx([0.75 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001, -0.25 / 0.5001])
    assert adv[4:].tolist() == [0.0, 0.0, 0.0, 0.0]
    assert group_advantages(T([3.0]), 1).tolist() == [0.0]


class TestPolicyLoss:
    def setup_method(self):
        g = torch.Generator().manual_seed(0)
        self.logp = -torch.rand(3, 5, generator=g, dtype=torch.float64) * 3
        self.ref = -torch.rand(3, 5, generator=g, dtype=torch.float64) * 3
        self.adv = T([1.0, -0.5, 0.25], dtype=torch.float64)
        self.mask = T([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1], [1, 0, 0, 0, 0]])

    def test_value_at_the_reference_is_minus_the_mean_advantage(self):
        loss, kl = policy_loss(self.logp, self.logp.clone(), self.adv, self.mask, beta=0.04)
        assert loss.item() == pytest.approx(-self.adv.mean().item()) and kl.item() == pytest.approx(0.0)

    def test_gradient_matches_the_analytic_form(self):
        logp = self.logp.clone().requires_grad_(True)
        loss, _ = policy_loss(logp, self.ref, self.adv, self.mask, beta=0.04)
        loss.backward()
        d = torch.clamp(self.ref - self.logp, -10, 10)
        per_token = (-self.adv[:, None] + 0.04 * (1 - torch.exp(d))) * self.mask
        expected = per_token / self.mask.sum(1, keepdim=True) / 3
        assert torch.allclose(logp.grad, expected)
        # finite differences move logp and its stop-gradient copy together, so they see only the KL term:
        zero = torch.zeros(3, dtype=torch.float64)
        assert torch.autograd.gradcheck(
            lambda x: policy_loss(x, self.ref, zero, self.mask, 0.04)[0], (self.logp.clone().requires_grad_(True),)
        )

    def test_kl_is_k3_with_the_clamp(self):
        logp = torch.zeros(1, 2, dtype=torch.float64)
        ref = T([[-30.0, 1.0]], dtype=torch.float64)  # d = -30 clamps to -10
        _, kl = policy_loss(logp, ref, T([0.0], dtype=torch.float64), torch.ones(1, 2), beta=0.04)
        k3 = lambda d: torch.exp(torch.tensor(d, dtype=torch.float64)) - d - 1  # noqa: E731
        assert kl.item() == pytest.approx(((k3(-10.0) + k3(1.0)) / 2).item())

    def test_aggregations(self):
        token, _ = policy_loss(self.logp, self.logp.clone(), self.adv, self.mask, 0.04, aggregation="token")
        assert token.item() == pytest.approx(-(3 * 1.0 + 5 * -0.5 + 1 * 0.25) / 9)
        dr, _ = policy_loss(self.logp, self.logp.clone(), self.adv, self.mask, 0.04, aggregation="dr_grpo")
        assert dr.item() == pytest.approx(-(3 * 1.0 + 5 * -0.5 + 1 * 0.25) / 5 / 3)
        with pytest.raises(ValueError):
            policy_loss(self.logp, self.ref, self.adv, self.mask, 0.04, aggregation="mean")


def completions(texts):
    return [Completion(t, [1] * 10, True) for t in texts]


def test_temporal_comparison_is_per_group_with_two_groups_on_one_device():
    right, wrong = "<think>x</think><answer>A</answer>", "<think>x</think><answer>B</answer>"
    video = {"solution": "<answer>A</answer>", "problem_type": "multiple choice", "data_type": "video"}
    # group 1: ordered 2/4 right, shuffled 0/2 -> fires. group 2: ordered 1/4, shuffled 2/2 -> does not.
    g1 = Group(video, None, completions([right, right, wrong, wrong]), completions([wrong, wrong]), [1, 0])
    g2 = Group(video, None, completions([right, wrong, wrong, wrong]), completions([right, right]), [1, 0])
    cfg = RLConfig(num_generations=4, len_control=False)
    totals, parts = group_rewards([g1, g2], cfg)
    assert [p["fired"] for p in parts] == [True, False]
    assert totals[0].tolist() == pytest.approx([2.3, 2.3, 1.0, 1.0]) and totals[1].tolist() == [2.0, 1.0, 1.0, 1.0]
    # pooled over the device's batch as the public code does, p = 3/8 < 0.8 * 2/4: neither group would get it
    pooled = shape_rewards(
        torch.cat([parts[0]["accuracy"], parts[1]["accuracy"]]),
        torch.ones(8),
        torch.full((8,), 10),
        torch.cat([parts[0]["shuffled_accuracy"], parts[1]["shuffled_accuracy"]]),
        len_control=False,
    )
    assert pooled[1] is False


@pytest.fixture(scope="module")
def tiny(tiny_model_dir):
    return load_model(tiny_model_dir), load_processor(tiny_model_dir)


@pytest.fixture(scope="module", params=["qwen2_5_vl", "qwen3_vl", "qwen3_5"])
def family_tiny(request, tiny_model_dir, family_model_dirs):
    """(model, processor, media rules) of each family's tiny model."""
    from videor1.models import get_family

    family = get_family(request.param)
    if family.name == "qwen2_5_vl":
        return load_model(tiny_model_dir), load_processor(tiny_model_dir), RULES
    root = family_model_dirs[family.name]
    rules = family.media_rules(replace(RULES, video_max_pixels=4096, image_max_pixels=9216))
    return load_model(root), load_processor(root), rules


@pytest.fixture(scope="module")
def rows(synth_data):
    return [{**r, "media_root": str(synth_data)} for r in json.loads((synth_data / "train.json").read_text())]


def test_logprobs_equal_a_plain_forward_and_see_the_frames(family_tiny, rows, synth_data):
    """In each family: the completion log-probs equal a plain forward's, with the family's extra inputs (Qwen2.5-VL's
    seconds per temporal patch, Qwen3-VL's DeepStack), and they change with the frames' order and, for Qwen2.5-VL,
    their temporal positions."""
    model, processor, rules = family_tiny
    row = next(r for r in rows if r["data_type"] == "video")
    medium = load_medium(synth_data / row["path"], "video", rules)
    prompt = prompt_inputs(processor, row, medium)
    comps = [[5, 6, 7, 8], [9, 10]]
    with torch.no_grad():
        logp, mask = completion_logprobs(model, prompt, comps, pad_id=processor.tokenizer.pad_token_id)
        inputs = dict(prompt)
        inputs["input_ids"] = torch.cat([prompt["input_ids"], T([[5, 6, 7, 8]])], 1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        inputs["mm_token_type_ids"] = torch.cat([prompt["mm_token_type_ids"], torch.zeros(1, 4, dtype=torch.long)], 1)
        full = model(**inputs).logits
    n = prompt["input_ids"].shape[1]
    expected = torch.log_softmax(full[0, n - 1 : n + 3].float(), -1).gather(-1, T([[5], [6], [7], [8]])).squeeze(-1)
    assert torch.allclose(logp[0], expected, atol=1e-5) and mask.tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]

    reversed_ = replace(medium, video=replace(medium.video, frames=medium.video.frames.flip(0)))
    with torch.no_grad():
        other, _ = completion_logprobs(
            model, prompt_inputs(processor, row, reversed_), comps, processor.tokenizer.pad_token_id
        )
    assert not torch.allclose(logp, other)
    if "second_per_grid_ts" in prompt:  # Qwen2.5-VL: time in the positions (Qwen3-VL's is in the prompt's text)
        slower = dict(prompt)
        slower["second_per_grid_ts"] = prompt["second_per_grid_ts"] * 4  # other temporal positions
        with torch.no_grad():
            timed, _ = completion_logprobs(model, type(prompt)(slower), comps, processor.tokenizer.pad_token_id)
        assert not torch.allclose(logp, timed)


def test_data_order_is_seeded_and_covers_every_row():
    first_epoch = [i for s in range(5) for i in data_order(10, s, 2, seed=3)]
    assert sorted(first_epoch) == list(range(10))
    assert data_order(10, 7, 2, seed=3) == data_order(10, 7, 2, seed=3) != data_order(10, 7, 2, seed=4)


def make_trainer(tiny, rows, tmp_path, steps, **overrides):
    model, processor = tiny
    policy = copy.deepcopy(model)
    cfg = RLConfig(
        **{
            **dict(
                steps=steps,
                prompts_per_step=2,
                num_generations=4,
                max_completion_length=12,
                learning_rate=1e-3,
                len_min=4,
                len_max=12,
                save_steps=2,
                seed=0,
            ),
            **overrides,
        }
    )
    backend = TransformersBackend(policy, processor, batch_size=12)
    return RLTrainer(
        policy,
        copy.deepcopy(model).requires_grad_(False),
        processor,
        backend,
        rows,
        RULES,
        cfg,
        tmp_path,
        log=lambda _: None,
    )


def test_trainer_resumes_with_the_same_data_and_results(tiny, rows, tmp_path):
    uninterrupted = make_trainer(tiny, rows, tmp_path / "a", steps=4).train()
    assert [r["step"] for r in uninterrupted] == [1, 2, 3, 4]
    assert all(r["groups"] == 2 and r["time_rollout_s"] > 0 for r in uninterrupted)

    killed = make_trainer(tiny, rows, tmp_path / "b", steps=4)
    for _ in range(3):  # step 3 runs but is never checkpointed: as if killed before step 4
        killed.train_step()
        if killed.step % 2 == 0:
            killed.save()
    resumed = make_trainer(tiny, rows, tmp_path / "b", steps=4)
    records = resumed.train()
    assert resumed.step == 4 and [r["step"] for r in records] == [1, 2, 3, 4]
    for a, b in zip(uninterrupted, records):
        for key in ("reward", "accuracy", "completion_length", "loss", "kl"):
            assert a[key] == pytest.approx(b[key], rel=1e-5, abs=1e-7), (key, a, b)


class RecordingBackend:
    """The trainer's own backend, keeping the requests of every call it is asked to sample."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    def generate(self, requests, sampling):
        self.calls.append(list(requests))
        return self.inner.generate(requests, sampling)

    def __getattr__(self, name):  # sync_weights, offload, prompt_limit, model: the real backend's
        return getattr(self.inner, name)


def test_shuffled_rollouts_hold_the_same_frames_in_another_order(tiny, rows, synth_data, tmp_path):
    """What the trainer hands the sampler in a step, prompt by prompt in the step's data order, against each medium
    decoded here on its own: a video gets G requests with its frames in order, then G/2 with exactly the same frame
    tensors (as a multiset) in one order that is not theirs; an image gets G requests of itself and none shuffled.
    Swapping the ordered and shuffled media, or shuffling another row's frames, fails here."""
    trainer = make_trainer(tiny, rows, tmp_path, steps=2, prompts_per_step=4)
    trainer.backend = recorder = RecordingBackend(trainer.backend)
    as_multiset = lambda frames: sorted(f.numpy().tobytes() for f in frames)  # noqa: E731
    seen = []
    for step in range(2):
        trainer.train_step()
        requests = recorder.calls[step]
        for i in data_order(len(rows), step, 4, seed=0):
            row = rows[i]
            medium = load_medium(synth_data / row["path"], row["data_type"], RULES)
            n = 4 + (2 if row["data_type"] == "video" else 0)
            mine, requests = requests[:n], requests[n:]
            assert all(r.messages == [user_message(row)] for r in mine), row["problem_id"]
            seen.append(row["data_type"])
            if row["data_type"] == "image":
                assert all(r.medium.image.tobytes() == medium.image.tobytes() for r in mine)
                continue
            frames, shuffled = medium.video.frames, [r.medium.video for r in mine[4:]]
            assert all(torch.equal(r.medium.video.frames, frames) for r in mine[:4]), row["problem_id"]  # in order
            assert not torch.equal(shuffled[0].frames, frames), row["problem_id"]  # not in order ...
            assert as_multiset(shuffled[0].frames) == as_multiset(frames), row["problem_id"]  # ... the same tensors
            assert all(torch.equal(v.frames, shuffled[0].frames) for v in shuffled)  # one shuffled prompt, G/2 samples
            assert all(v.sample_fps == medium.video.sample_fps for v in shuffled)  # at the same temporal positions
        assert requests == []  # nothing else was sampled
    assert seen.count("video") >= 2 and seen.count("image") >= 1, seen


def test_unreadable_media_is_skipped_loudly(tiny, rows, tmp_path):
    broken = [{**r, "media_root": str(tmp_path / "nowhere")} for r in rows[:3]]
    messages = []
    trainer = make_trainer(tiny, broken, tmp_path / "c", steps=1)
    trainer.log = messages.append
    record = trainer.train_step()
    assert record["groups"] == 0 and len(messages) == 2
    skipped = [json.loads(line) for line in (tmp_path / "c" / "skipped.jsonl").read_text().splitlines()]
    assert len(skipped) == 2 and all("nowhere" in s["reason"] or "No such file" in s["reason"] for s in skipped)


def test_shared_prompt_gives_the_gradients_of_separate_forwards(tiny, rows, synth_data):
    model, processor = tiny
    model = copy.deepcopy(model).train()
    row = next(r for r in rows if r["data_type"] == "video")
    prompt = prompt_inputs(processor, row, load_medium(synth_data / row["path"], "video", RULES))
    comps = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]
    logp, mask = completion_logprobs(model, prompt, comps, processor.tokenizer.pad_token_id)
    (logp * mask).sum().backward()
    shared = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    total = 0
    for c in comps:  # each completion on its own, the whole sequence through the model
        inputs = dict(prompt)
        inputs["input_ids"] = torch.cat([prompt["input_ids"], T([c])], 1)
        inputs["attention_mask"] = torch.ones_like(inputs["input_ids"])
        inputs["mm_token_type_ids"] = torch.cat(
            [prompt["mm_token_type_ids"], torch.zeros(1, len(c), dtype=torch.long)], 1
        )
        logits = model(**inputs).logits[0, -len(c) - 1 : -1]
        total = total + torch.log_softmax(logits, -1).gather(-1, T(c)[:, None]).sum()
    total.backward()
    assert shared.keys() == {n for n, p in model.named_parameters() if p.grad is not None}
    for name, grad in shared.items():
        assert torch.allclose(grad, dict(model.named_parameters())[name].grad, atol=1e-5, rtol=1e-4), name


def test_a_resumed_run_logs_every_step_once(tiny, rows, tmp_path):
    """Steps redone after a resume do not leave their first attempt's samples, skips or metrics behind."""
    broken = [
        r if i % 3 else {**r, "media_root": str(tmp_path / "nowhere")} for i, r in enumerate(rows)
    ]  # some never load
    killed = make_trainer(tiny, broken, tmp_path, steps=4, sample_dump_steps=1)
    for _ in range(3):  # step 3 runs, is logged, and is never checkpointed
        killed.train_step()
        if killed.step % 2 == 0:
            killed.save()
    make_trainer(tiny, broken, tmp_path, steps=4, sample_dump_steps=1).train()
    read = lambda name: [json.loads(line) for line in (tmp_path / name).read_text().splitlines()]  # noqa: E731
    metric_steps = [r["step"] for r in read("metrics.jsonl")]
    sample_steps = sorted({r["step"] for r in read("samples.jsonl")})
    assert metric_steps == [1, 2, 3, 4] and sample_steps == [1, 2, 3, 4]
    assert len(read("samples.jsonl")) == sum(min(2, r["groups"]) for r in read("metrics.jsonl"))
    skips = [(r["step"], r["problem_id"]) for r in read("skipped.jsonl")]
    assert skips and len(skips) == len(set(skips))


def test_bf16_compute_moves_the_fp32_master_weights_where_pure_bf16_weights_stay(tiny, rows, synth_data, tmp_path):
    """At the paper's lr 1e-6, one update under bf16 autocast changes nearly every fp32 master weight; the same
    update on bf16 weights (the old paper-profile path) leaves most of them where they were."""
    model, processor = tiny
    row = next(r for r in rows if r["data_type"] == "video")
    prompt = prompt_inputs(processor, row, load_medium(synth_data / row["path"], "video", RULES))
    completions = [
        Completion(text="", token_ids=ids, finished=False) for ids in ([5, 6, 7, 8], [9, 10], [11, 12, 13], [14])
    ]
    groups, advantages = [Group(row, prompt, completions, [], None)], [T([1.0, -1.0, 0.5, -0.5])]

    def share_changed(trainer) -> float:
        before = [p.detach().float().clone() for p in trainer.model.parameters()]
        trainer.update(groups, advantages)
        changed = sum(int((p.detach().float() != b).sum()) for p, b in zip(trainer.model.parameters(), before))
        return changed / sum(b.numel() for b in before)

    mixed = make_trainer(tiny, rows, tmp_path / "m", steps=1, learning_rate=1e-6, compute_dtype="bfloat16")
    assert next(mixed.model.parameters()).dtype == torch.float32
    pure = make_trainer(tiny, rows, tmp_path / "p", steps=1, learning_rate=1e-6)
    pure.model.to(torch.bfloat16)
    pure.ref_model.to(torch.bfloat16)
    mixed_share, pure_share = share_changed(mixed), share_changed(pure)
    assert mixed_share > 0.9 and pure_share < 0.2, (mixed_share, pure_share)


def test_an_over_long_prompt_is_skipped_with_its_length(tiny, rows, tmp_path):
    trainer = make_trainer(tiny, rows, tmp_path, steps=1, max_prompt_length=50)
    record = trainer.train_step()
    skipped = [json.loads(line) for line in (tmp_path / "skipped.jsonl").read_text().splitlines()]
    assert record["groups"] == 0 and len(skipped) == 2
    assert all(s["reason"].startswith("prompt too long:") and s["reason"].endswith("> 50") for s in skipped)


def test_gradient_checkpointing_gives_the_shared_prompt_numbers(tiny, rows, synth_data):
    """With checkpointing on, the log-probs come from whole sequences (no cache in training); they and their
    gradients equal the shared-prompt forward's."""
    model, processor = tiny
    row = next(r for r in rows if r["data_type"] == "video")
    prompt = prompt_inputs(processor, row, load_medium(synth_data / row["path"], "video", RULES))
    comps = [[5, 6, 7, 8], [9, 10], [11, 12, 13]]

    def run(checkpointing: bool):
        m = copy.deepcopy(model).train()
        if checkpointing:
            m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        logp, mask = completion_logprobs(m, prompt, comps, processor.tokenizer.pad_token_id)
        (logp * mask).sum().backward()
        return (logp * mask).detach(), {n: p.grad for n, p in m.named_parameters() if p.grad is not None}

    shared, shared_grads = run(False)
    checkpointed, checkpointed_grads = run(True)
    assert torch.allclose(shared, checkpointed, atol=1e-5)
    assert shared_grads.keys() == checkpointed_grads.keys()
    for name, grad in shared_grads.items():
        assert torch.allclose(grad, checkpointed_grads[name], atol=1e-5, rtol=1e-4), name


@pytest.mark.parametrize("data_type", ["video", "image"])
def test_the_checkpointed_path_runs_the_vision_tower_once_with_the_gradients_of_g_runs(
    family_tiny, rows, synth_data, data_type
):
    """G = 4 whole sequences under gradient checkpointing: one vision-tower call shared by the four rows; the
    log-probs and every gradient (the tower's included, which trains; Qwen3-VL's DeepStack mergers too) equal four
    calls on repeated pixels, in each family."""
    from videor1.rl.policy import completion_batch, separate_logprobs

    model, processor, rules = family_tiny
    row = next(r for r in rows if r["data_type"] == data_type)
    prompt = prompt_inputs(processor, row, load_medium(synth_data / row["path"], data_type, rules))
    ids, mask = completion_batch([[5, 6, 7, 8], [9, 10], [11, 12, 13], [14]], processor.tokenizer.pad_token_id, "cpu")

    def run(logprobs):
        m = copy.deepcopy(model).train()
        m.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        patches = []  # the tower's input rows, per call (repeated pixels: one call on four copies)
        m.model.visual.register_forward_pre_hook(lambda module, args: patches.append(args[0].shape[0]))
        logp = logprobs(m, prompt, ids, mask)
        (logp * mask * torch.arange(1.0, 5.0).view(-1, 1)).sum().backward()  # rows weighted differently
        return logp.detach(), {n: p.grad for n, p in m.named_parameters() if p.grad is not None}, patches

    once, once_grads, once_calls = run(separate_logprobs)
    as_it_was = functools.partial(
        separate_logprobs, chunk_tokens=None, share_vision=False
    )  # pixels repeated, full logits
    repeated, repeated_grads, repeated_calls = run(as_it_was)
    one = prompt["pixel_values_videos" if data_type == "video" else "pixel_values"].shape[0]
    assert once_calls == [one] and repeated_calls == [4 * one]
    assert torch.allclose(once, repeated, atol=1e-6)
    assert once_grads.keys() == repeated_grads.keys() and any(n.startswith("model.visual.") for n in once_grads)
    for name, grad in repeated_grads.items():
        assert torch.allclose(once_grads[name], grad, atol=1e-6, rtol=1e-5), name


def test_chunked_logprobs_equal_the_full_logits_and_hold_one_chunk():
    """Selected-token log-probs a chunk of positions at a time (the chunk recomputed in the backward): values and
    gradients equal the full ``[tokens × vocab]`` computation; the peak of live tensors is a chunk's, not all."""
    from videor1.plan import PeakTensorMemory
    from videor1.rl.policy import chunked_token_logprobs, token_logprobs

    g = torch.Generator().manual_seed(0)
    head = torch.nn.Linear(32, 8192, bias=False)
    hidden = torch.randn(3, 171, 32, generator=g, requires_grad=True)  # 513 positions: chunks of 32 do not divide it
    ids = torch.randint(0, 8192, (3, 171), generator=g)
    weights = torch.rand(3, 171, generator=g)

    def run(chunked: bool):
        head.zero_grad(set_to_none=True)
        hidden.grad = None
        with PeakTensorMemory() as memory:
            logp = chunked_token_logprobs(hidden, head, ids, 32) if chunked else token_logprobs(head(hidden), ids)
            (logp * weights).sum().backward()
        return logp.detach(), hidden.grad.clone(), head.weight.grad.clone(), memory.peak

    full, full_hidden, full_head, full_peak = run(False)
    chunked, chunked_hidden, chunked_head, chunked_peak = run(True)
    assert torch.allclose(chunked, full, atol=1e-5)
    assert torch.allclose(chunked_hidden, full_hidden, atol=1e-6) and torch.allclose(chunked_head, full_head, atol=1e-6)
    logits_bytes = 3 * 171 * 8192 * 4
    print(f"peak of live tensors: full {full_peak:,} B, chunked {chunked_peak:,} B ({logits_bytes:,} B of logits)")
    assert full_peak > 2 * logits_bytes and chunked_peak < logits_bytes / 2  # measured: 68.4 MB and 6.4 MB


def test_every_shuffled_request_holds_the_same_frames_in_another_order(tiny, rows):
    """What rollout() hands the engine: per video prompt, G requests on the frames as sampled, then G/2 on one
    permutation of exactly those frames (frame i of the shuffled clip is frame perm[i] of the ordered one, as the
    group records), whose content differs from the ordered clip; images and plain GRPO get no shuffled request.
    Swapping the ordered and shuffled media, or shuffling other frames, fails here."""
    from videor1.generation import SamplingConfig
    from videor1.rl.rollout import rollout

    model, processor = tiny
    real = TransformersBackend(model, processor, batch_size=32)

    class Recording:  # the real backend, with the requests it was given kept
        def __init__(self):
            self.requests = []

        def generate(self, requests, sampling):
            self.requests += requests
            return real.generate(requests, replace(sampling, max_new_tokens=2))

    videos = [r for r in rows if r["data_type"] == "video"][:3]
    picked = [*videos, next(r for r in rows if r["data_type"] == "image")]
    media = [load_medium(f"{r['media_root']}/{r['path']}", r["data_type"], RULES) for r in picked]
    G = 4
    for temporal in (True, False):
        backend = Recording()
        groups = rollout(
            backend, processor, picked, media, num_generations=G, temporal=temporal,
            sampling=SamplingConfig(temperature=1.0, top_p=1.0, max_new_tokens=2), seed=3,
        )  # fmt: skip
        k = 0
        for group, medium in zip(groups, media):
            n_shuffled = G // 2 if temporal and medium.data_type == "video" else 0
            ordered, shuffled = backend.requests[k : k + G], backend.requests[k + G : k + G + n_shuffled]
            k += G + n_shuffled
            assert len(group.ordered) == G and len(group.shuffled) == n_shuffled
            assert all(r.medium is medium for r in ordered)  # the frames as sampled, untouched
            if not n_shuffled:
                assert group.permutation is None
                continue
            frames, perm = medium.video.frames, group.permutation
            assert len({id(r.medium) for r in shuffled}) == 1  # one permutation per group
            moved = shuffled[0].medium.video.frames
            assert sorted(perm) == list(range(len(frames))) and perm != sorted(perm)
            assert torch.equal(moved, frames[torch.tensor(perm)])  # exactly the same frames, reordered
            assert not torch.equal(moved, frames)  # and the clip the policy sees is really another order
        assert k == len(backend.requests)
