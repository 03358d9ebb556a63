"""T-GRPO (spec section 4) as pure tensor functions: reward shaping, group advantages, the policy loss.

Everything here works on one group (shape_rewards) or on groups laid out
contiguously (group_advantages), so the temporal comparison is per prompt even
when a device holds several prompts; the public code compares over the whole
per-device batch, which is one group only at batch size 1.
"""

from __future__ import annotations

import torch


def shape_rewards(
    accuracy: torch.Tensor,
    format: torch.Tensor,
    lengths: torch.Tensor,
    shuffled_accuracy: torch.Tensor | None = None,
    *,
    temporal: bool = True,
    len_control: bool = True,
    alpha: float = 0.3,
    mu: float = 0.8,
    length_bonus: float = 0.2,
    len_min: int = 320,
    len_max: int = 512,
) -> tuple[torch.Tensor, bool]:
    """Total reward of each ordered completion of ONE group, and whether the temporal bonus was given.

    ``accuracy``, ``format``, ``lengths``: one entry per ordered completion (lengths in tokens up
    to and including the first end token). ``shuffled_accuracy``: the accuracies of the group
    sampled on shuffled frames, or None (image prompts, or plain GRPO).

    Temporal bonus: when p >= mu * p_shuffled (p, p_shuffled the mean accuracies), each ordered
    completion with accuracy > 0.1 gets +alpha. It counts as given only when some completion got it.
    Length bonus: when more than one completion has accuracy > 0.1, those among them whose length
    lies in [len_min, len_max] get +length_bonus.
    """
    accuracy = accuracy.float()
    correct = accuracy > 0.1
    total = accuracy + format.float()
    fired = False
    if temporal and shuffled_accuracy is not None and len(shuffled_accuracy) > 0:
        if accuracy.mean() >= mu * shuffled_accuracy.float().mean() and bool(correct.any()):
            total = total + alpha * correct.float()
            fired = True
    if len_control and int(correct.sum()) > 1:
        in_window = (lengths >= len_min) & (lengths <= len_max)
        total = total + length_bonus * (correct & in_window).float()
    return total, fired


def group_advantages(rewards: torch.Tensor, group_size: int) -> torch.Tensor:
    """(r − group mean) / (group std + 1e-4) with the unbiased std, for groups laid out contiguously.

    A group of one completion has no spread: its advantage is 0.
    """
    groups = rewards.float().view(-1, group_size)
    mean = groups.mean(dim=1, keepdim=True)
    std = groups.std(dim=1, unbiased=True, keepdim=True) if group_size > 1 else torch.zeros_like(mean)
    return ((groups - mean) / (std + 1e-4)).view(-1)


LOSS_AGGREGATIONS = ("sequence", "token", "dr_grpo")


def policy_loss(
    logp: torch.Tensor,
    ref_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    beta: float,
    *,
    aggregation: str = "sequence",
) -> tuple[torch.Tensor, torch.Tensor]:
    """The GRPO loss of spec section 4 and the mean KL to the reference.

    Per token: −(exp(logp − stop_grad(logp)) · A − beta · KL), KL = exp(d) − d − 1 with
    d = clamp(ref_logp − logp, −10, 10) (the k3 estimator). ``logp``, ``ref_logp``, ``mask``:
    batch × completion tokens; ``advantages``: one per sequence.

    ``aggregation``: ``sequence`` (the spec's: mean over each sequence's tokens, then over
    sequences), ``token`` (DAPO: mean over all tokens of the batch), ``dr_grpo`` (Dr. GRPO:
    sum over tokens divided by the padded completion length, then mean over sequences).
    """
    mask = mask.to(logp.dtype)
    d = torch.clamp(ref_logp - logp, -10.0, 10.0)
    kl = torch.exp(d) - d - 1.0
    ratio = torch.exp(logp - logp.detach())  # 1, with the gradient of logp
    per_token = -(ratio * advantages.unsqueeze(1) - beta * kl)
    tokens = mask.sum(dim=1).clamp(min=1.0)
    if aggregation == "sequence":
        loss = ((per_token * mask).sum(dim=1) / tokens).mean()
    elif aggregation == "token":
        loss = (per_token * mask).sum() / mask.sum().clamp(min=1.0)
    elif aggregation == "dr_grpo":
        loss = ((per_token * mask).sum(dim=1) / mask.shape[1]).mean()
    else:
        raise ValueError(f"aggregation must be one of {LOSS_AGGREGATIONS}, got {aggregation!r}")
    mean_kl = ((kl * mask).sum(dim=1) / tokens).mean().detach()
    return loss, mean_kl
