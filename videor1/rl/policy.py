"""Per-token log-probabilities of sampled completions, each forward with its own sample's vision inputs.

A group's G completions share one prompt, so they go through the model in one
forward of G rows: the prompt's ids, ``mm_token_type_ids``, pixels, grids and
``second_per_grid_ts`` (kept: the public code drops it, so its training saw other
temporal positions than rollout and eval) repeated per row, then each
completion's sampled ids. Log-probs are gathered at the sampled ids and
normalised by a logsumexp over the completion positions only, never a
full-vocabulary log-softmax of the whole sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import BatchFeature

VISION_KEYS_PER_ITEM = {"pixel_values": "image_grid_thw", "pixel_values_videos": "video_grid_thw"}


def repeat_prompt(prompt: BatchFeature, n: int) -> dict:
    """The inputs of one prompt (batch of 1) repeated for n rows, vision tensors included."""
    out = {}
    for key, value in prompt.items():
        if key in VISION_KEYS_PER_ITEM:  # patches of all items are concatenated along dim 0
            out[key] = value.repeat(n, 1)
        elif isinstance(value, torch.Tensor):
            out[key] = value.repeat(n, *([1] * (value.dim() - 1)))
        else:
            out[key] = value
    return out


def completion_batch(completions: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded completion ids and their mask."""
    length = max(1, max(len(c) for c in completions))
    ids = torch.full((len(completions), length), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(completions), length), dtype=torch.long, device=device)
    for i, c in enumerate(completions):
        ids[i, :len(c)] = torch.tensor(c, dtype=torch.long, device=device)
        mask[i, :len(c)] = 1
    return ids, mask


def completion_logprobs(model, prompt: BatchFeature, completions: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of every completion token (rows × max completion length) and the completion mask.

    ``prompt``: the processor's inputs for ONE prompt (batch of 1, no padding) with its vision tensors.
    """
    device = prompt["input_ids"].device
    ids, mask = completion_batch(completions, pad_id, device)
    inputs = repeat_prompt(prompt, len(completions))
    inputs["input_ids"] = torch.cat([inputs["input_ids"], ids], dim=1)
    inputs["attention_mask"] = torch.cat([inputs["attention_mask"], mask], dim=1)
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = torch.cat([inputs["mm_token_type_ids"], torch.zeros_like(ids)], dim=1)
    length = ids.shape[1]
    logits = model(**inputs, logits_to_keep=length + 1).logits[:, :-1].float()  # position t predicts token t + 1
    token_logits = logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1)
    return token_logits - torch.logsumexp(logits, dim=-1), mask
