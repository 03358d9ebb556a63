"""Per-token log-probabilities of sampled completions, each forward with its own sample's vision inputs.

A group's G completions share one prompt, so the prompt goes through the model
once, with its ids, ``mm_token_type_ids``, pixels, grids and ``second_per_grid_ts``
(kept: the public code drops it, so its training saw other temporal positions
than rollout and eval), and its key/value cache serves all G completions in one
forward of G rows. With gradient checkpointing (no cache in training) G whole
sequences run instead, and the vision tower still runs once: its output is
shared by the G rows (``vision_once``), so its gradient is the sum over them.

Log-probs never hold ``[tokens × vocab]`` logits: inside the model's forward the
LM head is replaced (``selected_logprobs``) by one that takes the hidden states a
chunk of positions at a time, computes that chunk's logits, gathers the sampled
ids and normalises with a logsumexp, and recomputes the chunk in the backward
(activation checkpointing), so one chunk's logits are alive at any moment. At
Qwen's 151,665-token vocabulary a group of 8 × 768 tokens would otherwise hold
~3.5 GiB of float32 logits, plus their bf16 copy and gradient.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

import torch
from torch.utils.checkpoint import checkpoint
from transformers import BatchFeature

from ..models.families import family_of

CHUNK_TOKENS = 1024  # positions whose logits exist at once (1024 × 151,665 × 4 B = 0.58 GiB in fp32)


def completion_batch(completions: Sequence[Sequence[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-padded completion ids and their mask."""
    length = max(1, max(len(c) for c in completions))
    ids = torch.full((len(completions), length), pad_id, dtype=torch.long, device=device)
    mask = torch.zeros((len(completions), length), dtype=torch.long, device=device)
    for i, c in enumerate(completions):
        ids[i, : len(c)] = torch.tensor(c, dtype=torch.long, device=device)
        mask[i, : len(c)] = 1
    return ids, mask


def prompt_positions(model, prompt: BatchFeature) -> torch.Tensor:
    """M-RoPE position ids (3 × 1 × prompt length) of one prompt, from its own grids and ``second_per_grid_ts``."""
    positions, _ = model.model.get_rope_index(
        prompt["input_ids"],
        mm_token_type_ids=prompt["mm_token_type_ids"],
        image_grid_thw=prompt.get("image_grid_thw"),
        video_grid_thw=prompt.get("video_grid_thw"),
        second_per_grid_ts=prompt.get("second_per_grid_ts"),
        attention_mask=prompt["attention_mask"],
    )
    return positions


def token_logprobs(logits: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[ids], normalised with a logsumexp over these positions only, in fp32."""
    logits = logits.float()
    return logits.gather(-1, ids.unsqueeze(-1)).squeeze(-1) - torch.logsumexp(logits, dim=-1)


def _chunk_logprobs(hidden: torch.Tensor, head, ids: torch.Tensor) -> torch.Tensor:
    return token_logprobs(head(hidden), ids)


def chunked_token_logprobs(
    hidden: torch.Tensor, head, ids: torch.Tensor, chunk_tokens: int = CHUNK_TOKENS
) -> torch.Tensor:
    """``token_logprobs(head(hidden), ids)`` (hidden: rows × positions × width) computed ``chunk_tokens`` positions
    at a time, each chunk's logits recomputed in the backward instead of kept: the same values and gradients,
    one chunk of logits alive at a time."""
    rows, positions, width = hidden.shape
    flat, flat_ids = hidden.reshape(rows * positions, width), ids.reshape(rows * positions)
    pieces = []
    for start in range(0, flat.shape[0], chunk_tokens):
        part, part_ids = flat[start : start + chunk_tokens], flat_ids[start : start + chunk_tokens]
        if torch.is_grad_enabled():
            pieces.append(checkpoint(_chunk_logprobs, part, head, part_ids, use_reentrant=False))
        else:
            pieces.append(_chunk_logprobs(part, head, part_ids))
    return torch.cat(pieces).view(rows, positions)


@contextlib.contextmanager
def selected_logprobs(model, ids: torch.Tensor, chunk_tokens: int = CHUNK_TOKENS):
    """Within the block, the model's LM head returns log-probs of ``ids`` (rows × positions, aligned with the
    hidden states it is given) instead of logits. It runs inside the model's own forward, where a sharded model
    (FSDP2) has gathered the head's weights."""
    head = model.lm_head
    project = type(head).forward.__get__(head)  # the head's own matrix product, not the replacement below
    head.forward = lambda hidden: chunked_token_logprobs(hidden, project, ids, chunk_tokens)
    try:
        yield
    finally:
        del head.forward  # back to the class's forward


@contextlib.contextmanager
def vision_once(model, rows: int):
    """Within the block, a forward over ``rows`` copies of one prompt runs the vision tower on the prompt's own
    pixels once and shares its output: ``get_image_features`` / ``get_video_features`` get the pixels once and the
    grids ``rows`` times (the positions need every row's grids), and hand back the embeddings ``rows`` times."""
    inner = model.model
    originals = {name: getattr(inner, name) for name in ("get_image_features", "get_video_features")}
    inside = []  # Qwen3-VL's get_video_features calls get_image_features: only the outer call shares

    def once(original):
        def features(pixels, grid_thw=None, **kwargs):
            if inside:
                return original(pixels, grid_thw, **kwargs)
            inside.append(True)
            try:
                out = original(pixels, grid_thw[: len(grid_thw) // rows], **kwargs)
            finally:
                inside.pop()
            out.pooler_output = tuple(out.pooler_output) * rows
            if getattr(out, "deepstack_features", None):  # Qwen3-VL: each tapped layer's features, rows times too
                out.deepstack_features = [tuple(f) * rows for f in out.deepstack_features]
            return out

        return features

    for name, original in originals.items():
        setattr(inner, name, once(original))
    try:
        yield
    finally:
        for name in originals:
            delattr(inner, name)  # back to the class's methods


def separate_logprobs(
    model,
    prompt: BatchFeature,
    ids: torch.Tensor,
    mask: torch.Tensor,
    chunk_tokens: int | None = CHUNK_TOKENS,
    share_vision: bool = True,
) -> torch.Tensor:
    """The same log-probs from G whole sequences (prompt + completion): what gradient checkpointing needs, since it
    runs without a key/value cache. The prompt's vision inputs go in once and the tower runs once for all G.
    ``share_vision=False`` / ``chunk_tokens=None``: the path as it was (the pixels repeated G times, the tower run on
    all of them; full-vocabulary logits), kept for the equality test and the benchmark."""
    rows, length = ids.shape
    inputs = {
        "input_ids": torch.cat([prompt["input_ids"].expand(rows, -1), ids], dim=1),
        "attention_mask": torch.cat([prompt["attention_mask"].expand(rows, -1), mask], dim=1),
        "mm_token_type_ids": torch.cat([prompt["mm_token_type_ids"].expand(rows, -1), torch.zeros_like(ids)], dim=1),
    }
    for key in ("pixel_values", "pixel_values_videos"):
        if prompt.get(key) is not None:
            inputs[key] = prompt[key] if share_vision else prompt[key].repeat(rows, 1)
    for key in ("image_grid_thw", "video_grid_thw", "second_per_grid_ts"):
        if prompt.get(key) is not None:
            inputs[key] = prompt[key].repeat(rows, *[1] * (prompt[key].dim() - 1))
    # positions n - 1 ... n + length - 2 predict the completion: the last length + 1 hidden states, less the last
    targets = torch.cat([ids, ids[:, -1:]], dim=1)  # the last position predicts nothing: any id, dropped below
    with contextlib.ExitStack() as stack:
        if share_vision:
            stack.enter_context(vision_once(model, rows))
        if chunk_tokens is not None:
            stack.enter_context(selected_logprobs(model, targets, chunk_tokens))
        out = model(**inputs, use_cache=False, logits_to_keep=length + 1).logits
    return out[:, :-1] if chunk_tokens is not None else token_logprobs(out[:, :-1], ids)


def completion_logprobs(
    model, prompt: BatchFeature, completions: Sequence[Sequence[int]], pad_id: int, chunk_tokens: int = CHUNK_TOKENS
) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-prob of every completion token (rows × max completion length) and the completion mask.

    ``prompt``: the processor's inputs for ONE prompt (batch of 1, no padding) with its vision tensors.
    The prompt (vision encoder included) runs once; its key/value cache is shared by the G completions,
    which continue its text positions. Gradients flow through the shared prompt as through G copies.
    With gradient checkpointing on (no cache in training), or for a family whose cache cannot be shared
    (``ModelFamily.prompt_cache``: Qwen3.5's recurrent state), G whole sequences run instead (same numbers).
    """
    device = prompt["input_ids"].device
    ids, mask = completion_batch(completions, pad_id, device)
    if (model.training and getattr(model, "is_gradient_checkpointing", False)) or not family_of(model).prompt_cache:
        return separate_logprobs(model, prompt, ids, mask, chunk_tokens), mask
    rows, length = ids.shape
    positions = prompt_positions(model, prompt)
    prefill = model(**prompt, position_ids=positions, use_cache=True, logits_to_keep=1)  # one row of logits
    cache = prefill.past_key_values
    cache.batch_repeat_interleave(rows)
    start = positions.max() + 1  # text after the prompt: the same running index on all three M-RoPE axes
    completion_positions = (start + torch.arange(length, device=device)).view(1, 1, -1).expand(3, rows, -1)
    attention = torch.cat([prompt["attention_mask"].expand(rows, -1), mask], dim=1)
    # the prompt's last position predicts completion token 0; completion position t predicts token t + 1
    first = token_logprobs(prefill.logits[:, -1].expand(rows, -1), ids[:, 0])
    targets = torch.cat([ids[:, 1:], ids[:, -1:]], dim=1)  # the last position predicts nothing: dropped below
    with selected_logprobs(model, targets, chunk_tokens):
        rest = model(
            input_ids=ids, attention_mask=attention, position_ids=completion_positions, past_key_values=cache
        ).logits
    return torch.cat([first.unsqueeze(1), rest[:, :-1]], dim=1), mask
