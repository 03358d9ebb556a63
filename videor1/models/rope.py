"""Qwen2.5-VL's M-RoPE position ids as the original Qwen code (and vLLM) compute them.

transformers 5.x rewrote ``get_rope_index``; for a video it now starts the text
after the video at ``start + max(h, w) / merge``, ignoring how far the video's
temporal positions reach (``(t - 1) * second_per_grid_t * tokens_per_second``).
The original Qwen2.5-VL code, which Video-R1 trained with, and vLLM start it at
the largest position of the video + 1. For images (t = 1) the two agree; for
videos every text token after the video gets other positions, so a transformers
forward and a vLLM forward of the same prompt disagree (measured: greedy
outputs equal on 0 of 10 video rows). ``use_reference_positions(model)`` gives a
loaded model the original rule; every model videor1 builds or loads has it.
"""

from __future__ import annotations

import types

import torch

TEXT, IMAGE, VIDEO = 0, 1, 2  # mm_token_type_ids


def vision_positions(start: int, grid_thw, merge: int, time_interval: float) -> torch.Tensor:
    """3 × (t·h·w) positions of one image or video: (t · interval) on axis 0, rows and columns on 1 and 2.
    The product is taken in float64 and truncated, as vLLM does (numpy): in float32 ``t · interval`` can land on
    the other side of an integer when the seconds per patch are not whole."""
    t, h, w = (int(x) for x in grid_thw)
    h, w = h // merge, w // merge
    temporal = (torch.arange(t, dtype=torch.float64).view(-1, 1, 1) * time_interval).long().expand(t, h, w)
    rows = torch.arange(h).view(1, -1, 1).expand(t, h, w)
    cols = torch.arange(w).view(1, 1, -1).expand(t, h, w)
    return torch.stack([temporal, rows, cols]).reshape(3, -1) + start


def check_seconds(second_per_grid_ts) -> None:
    """Refuse video seconds that reached the model in a low-precision dtype: bf16 holds 4.575 as 4.5625, and
    ``(t · s · tokens_per_second)`` then gives other temporal ids than rollout and eval (FSDP's mixed precision
    casts forward inputs unless told not to: ``videor1.distributed.shard_model`` keeps them fp32)."""
    if second_per_grid_ts is not None and second_per_grid_ts.dtype not in (torch.float32, torch.float64):
        raise TypeError(f"second_per_grid_ts arrived as {second_per_grid_ts.dtype}: temporal positions need it in "
                        "float32 (the processor's dtype); keep it out of mixed-precision input casts")


def reference_rope_index(self, input_ids: torch.Tensor, mm_token_type_ids: torch.Tensor, image_grid_thw=None,
                         video_grid_thw=None, second_per_grid_ts=None, attention_mask=None, **_) -> tuple[torch.Tensor, torch.Tensor]:
    """Drop-in for ``Qwen2_5_VLModel.get_rope_index`` (same arguments and outputs), with the original rule:
    text continues at (largest position so far) + 1, after an image or a video alike."""
    merge = self.config.vision_config.spatial_merge_size
    tokens_per_second = self.config.vision_config.tokens_per_second
    check_seconds(second_per_grid_ts)
    grids = {IMAGE: iter(image_grid_thw if image_grid_thw is not None else []),
             VIDEO: iter(video_grid_thw if video_grid_thw is not None else [])}
    seconds = iter(second_per_grid_ts.tolist() if second_per_grid_ts is not None else [])
    position_ids = torch.zeros(3, *input_ids.shape, dtype=input_ids.dtype, device=input_ids.device)
    deltas = []
    for b in range(input_ids.shape[0]):
        keep = attention_mask[b].bool() if attention_mask is not None else torch.ones_like(input_ids[b], dtype=torch.bool)
        types_b = mm_token_type_ids[b][keep].tolist()
        pieces, next_pos, i = [], 0, 0
        while i < len(types_b):
            kind, j = types_b[i], i
            while j < len(types_b) and types_b[j] == kind:
                j += 1
            if kind == TEXT:
                pieces.append(torch.arange(j - i).view(1, -1).expand(3, -1) + next_pos)
            else:
                interval = tokens_per_second * next(seconds, 1.0) if kind == VIDEO else 1.0
                pieces.append(vision_positions(next_pos, next(grids[kind]), merge, interval))
            next_pos = int(pieces[-1].max()) + 1
            i = j
        positions = torch.cat(pieces, dim=1) if pieces else torch.zeros(3, 0, dtype=torch.long)
        position_ids[:, b, keep] = positions.to(position_ids)
        deltas.append(next_pos - len(types_b))
    return position_ids, torch.tensor(deltas, device=input_ids.device).unsqueeze(1)


def use_reference_positions(model) -> None:
    """Give a Qwen2.5-VL model (the ``…ForConditionalGeneration`` or its inner model) the original M-RoPE rule."""
    inner = getattr(model, "model", model)
    inner.get_rope_index = types.MethodType(reference_rope_index, inner)
