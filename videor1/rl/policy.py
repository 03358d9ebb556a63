"""Per-token log-probabilities of sampled completions, each forward with its own sample's vision inputs.

A group's G completions share one prompt, so the prompt goes through the model
once, with its ids, ``mm_token_type_ids``, pixels, grids and ``second_per_grid_ts``
(kept: the public code drops it, so its training saw other temporal positions
than rollout and eval), and its key/value cache serves all G completions in one
forward of G rows. Log-probs are gathered at the sampled ids and normalised by a
logsumexp over the completion positions only, never a full-vocabulary
log-softmax of the whole sequence.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from transformers import BatchFeature

def completion_batch(completions: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded completion ids and their mask."""
    length = max(1, max(len(c) for c in completions))
    ids = torch.full((len(completions), length), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(completions), length), dtype=torch.long, device=device)
    for i, c in enumerate(completions):
        ids[i, :len(c)] = torch.tensor(c, dtype=torch.long, device=device)
        mask[i, :len(c)] = 1
    return ids, mask


def prompt_positions(model, prompt: BatchFeature) -> torch.Tensor:
    """M-RoPE position ids (3 × 1 × prompt length) of one prompt, from its own grids and ``second_per_grid_ts``."""
    positions, _ = model.model.get_rope_index(
        prompt["input_ids"], mm_token_type_ids=prompt["mm_token_type_ids"], image_grid_thw=prompt.get("image_grid_thw"),
        video_grid_thw=prompt.get("video_grid_thw"), second_per_grid_ts=prompt.get("second_per_grid_ts"),
        attention_mask=prompt["attention_mask"])
    return positions


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[ids], normalised with a logsumexp over these positions only, in fp32."""
    logits = logits.float()
    return logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def separate_logprobs(model, prompt: BatchFeature, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The same log-probs from G whole sequences (prompt + completion), the prompt's vision inputs repeated:
    what gradient checkpointing needs, since it runs without a key/value cache."""
    rows, length = ids.shape
    inputs = {
        "input_ids": torch.cat([prompt["input_ids"].expand(rows, -1), ids], dim=1),
        "attention_mask": torch.cat([prompt["attention_mask"].expand(rows, -1), mask], dim=1),
        "mm_token_type_ids": torch.cat([prompt["mm_token_type_ids"].expand(rows, -1), torch.zeros_like(ids)], dim=1),
    }
    for key in ("pixel_values", "pixel_values_videos"):
        if prompt.get(key) is not None:
            inputs[key] = prompt[key].repeat(rows, 1)
    for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts"):
        if prompt.get(key) is not None:
            inputs[key] = prompt[key].repeat(rows, *[1] * (prompt[key].dim() - 1))
    # positions n - 1 ... n + length - 2 predict the completion: the last length + 1 logits, less the last
    logits = model(**inputs, use_cache=False, logits_to_keep=length + 1).logits[:, :-1]
    return token_logprobs(logits, ids)


def completion_logprobs(model, prompt: BatchFeature, completions: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of every completion token (rows × max completion length) and the completion mask.

    ``prompt``: the processor's inputs for ONE prompt (batch of 1, no padding) with its vision tensors.
    The prompt (vision encoder included) runs once; its key/value cache is shared by the G completions,
    which continue its text positions. Gradients flow through the shared prompt as through G copies.
    With gradient checkpointing on (no cache in training), G whole sequences run instead (same numbers).
    """
    device = prompt["input_ids"].device
    ids, mask = completion_batch(completions, pad_id, device)
    if model.training and getattr(model, "is_gradient_checkpointing", False):
        return separate_logprobs(model, prompt, ids, mask), mask
    rows, length = ids.shape
    positions = prompt_positions(model, prompt)
    prefill = model(**prompt, position_ids=positions, use_cache=True, logits_to_keep=1)
    cache = prefill.past_key_values
    cache.batch_repeat_interleave(rows)
    start = positions.max() + 1  # text after the prompt: the same running index on all three M-RoPE axes
    completion_positions = (start + torch.arange(length, device=device)).view(1, 1, -1).expand(3, rows, -1)
    attention = torch.cat([prompt["attention_mask"].expand(rows, -1), mask], dim=1)
    out = model(input_ids=ids, attention_mask=attention, position_ids=completion_positions, past_key_values=cache)
    # the prompt's last position predicts completion token 0; completion position t predicts token t + 1
    logits = torch.cat([prefill.logits[:, -1:].expand(rows, -1, -1), out.logits[:, :-1]], dim=1)
    return token_logprobs(logits, ids), mask
