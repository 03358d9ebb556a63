"""The public Video-R1 recipe's structure, as ``bench/rl.py`` runs it for its baseline, computes what ours does: on
the same weights and completions the per-token log-probs, the loss and its gradients agree, and so do the rewards
and advantages. So the benchmark's speed-up compares equal work."""

from __future__ import annotations

import copy
import json

import pytest
import torch

from bench.rl import public_group_logprobs, public_rewards
from videor1.generation import Completion
from videor1.media import MediaRules, load_medium
from videor1.models import load_model, load_processor
from videor1.rl import RLConfig, completion_logprobs, group_advantages, group_rewards, policy_loss
from videor1.rl.rollout import Group, prompt_inputs

RULES = MediaRules(
    max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056
)


@pytest.fixture(scope="module")
def policy_and_prompt(tiny_model_dir, synth_data):
    model, processor = load_model(tiny_model_dir), load_processor(tiny_model_dir)
    rows = json.loads((synth_data / "train.json").read_text())
    row = next(r for r in rows if r["data_type"] == "video")
    prompt = prompt_inputs(processor, row, load_medium(synth_data / row["path"], "video", RULES))
    reference = copy.deepcopy(model).eval().requires_grad_(False)
    with torch.no_grad():  # a reference that differs from the policy, so the KL term is not zero
        for p in reference.parameters():
            p.add_(0.01 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model.train(), reference, prompt, processor.tokenizer.pad_token_id


def test_public_logprobs_loss_and_gradients_equal_ours(policy_and_prompt):
    model, reference, prompt, pad_id = policy_and_prompt
    g = torch.Generator().manual_seed(0)
    completions = [torch.randint(5, 300, (n,), generator=g).tolist() for n in (12, 7, 3, 9)]  # uneven: padding
    advantages = torch.tensor([1.0, -0.5, 0.25, -0.75])
    ours_path = lambda m, p, ids: completion_logprobs(m, p, ids, pad_id)  # noqa: E731
    got = {}
    for name, logprobs in (("ours", ours_path), ("public", public_group_logprobs)):
        model.zero_grad(set_to_none=True)
        logp, mask = logprobs(model, prompt, completions)
        with torch.no_grad():
            ref_logp, _ = logprobs(reference, prompt, completions)
        loss, _ = policy_loss(logp, ref_logp, advantages, mask, 0.04)
        loss.backward()
        grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
        got[name] = (logp.detach(), ref_logp, mask, loss.item(), grads)
    (logp, ref, mask, loss, grads), (pub_logp, pub_ref, pub_mask, pub_loss, pub_grads) = got["ours"], got["public"]
    assert mask.tolist() == pub_mask.tolist() and int(mask.sum()) == 31
    m = mask.bool()
    assert (logp - pub_logp).abs()[m].max() < 1e-4 and (ref - pub_ref).abs()[m].max() < 1e-4
    assert (logp - ref).abs()[m].max() > 1e-3  # the reference does differ
    assert loss == pytest.approx(pub_loss, abs=1e-5)
    assert grads.keys() == pub_grads.keys() and len(grads) > 10
    for name, grad in grads.items():
        torch.testing.assert_close(grad, pub_grads[name], atol=1e-5, rtol=1e-4, msg=name)


def completion(text: str, tokens: int) -> Completion:
    return Completion(text, list(range(tokens)), True)


def test_public_rewards_and_advantages_equal_ours():
    right, wrong = "<think>I look.</think>\n<answer>B</answer>", "<think>I look.</think>\n<answer>C</answer>"
    row = {"solution": "<answer>B</answer>", "problem_type": "multiple choice", "data_type": "video"}
    groups = [
        # 3 of 4 right against 0 of 2 on shuffled frames: the temporal bonus; two right ones in the length window
        Group(row, None, [completion(t, n) for t, n in ((right, 5), (right, 50), (right, 10), (wrong, 3))],
              [completion(wrong, 4)] * 2, [1, 0]),
        # 1 of 4 against 2 of 2 shuffled: no temporal bonus, one right answer gets no length bonus
        Group(row, None, [completion(t, 8) for t in (right, wrong, wrong, "no tags")], [completion(right, 4)] * 2,
              [1, 0]),
        Group({**row, "data_type": "image"}, None, [completion(t, 8) for t in (right, right, wrong, wrong)], [], None),
    ]  # fmt: skip
    cfg = RLConfig(num_generations=4, len_min=4, len_max=20)
    totals, parts = group_rewards(groups, cfg)
    rewards, advantages = public_rewards(groups, cfg)
    assert [bool(p["fired"]) for p in parts] == [True, False, False]
    expected = [2.5, 2.3, 2.5, 1.0, 2.0, 1.0, 1.0, 0.0, 2.2, 2.2, 1.0, 1.0]  # accuracy + format + 0.3 + 0.2
    assert torch.cat(totals).tolist() == pytest.approx(expected) and rewards.tolist() == pytest.approx(expected)
    ours = torch.cat([group_advantages(t, cfg.num_generations) for t in totals])
    torch.testing.assert_close(ours, advantages, atol=1e-4, rtol=0)
