"""Rollouts for T-GRPO: per prompt, G completions on the ordered frames and, for a video, G/2 on a
random permutation of the same frames, all sampled in one generate call."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import torch
from transformers import BatchFeature

from ..generation import Completion, GenerationBackend, GenerationRequest, SamplingConfig, chat_text, processor_inputs
from ..media import Medium
from ..prompts import user_message


@dataclass
class Group:
    """One prompt's rollouts."""

    row: dict
    prompt: BatchFeature  # the processor's inputs for the ordered prompt (batch of 1)
    ordered: list[Completion]
    shuffled: list[Completion]  # empty for images and plain GRPO
    permutation: list[int] | None


def shuffle_frames(medium: Medium, generator: torch.Generator) -> tuple[Medium, list[int]]:
    """The same frames in a random order: never the identity when there are two or more, and never an order that
    only swaps equal frames (a clip holding each state for several frames has many), unless every frame is equal."""
    n, frames = medium.num_frames, medium.video.frames
    varied = bool((frames != frames[:1]).any())

    def unchanged(perm: torch.Tensor) -> bool:
        return torch.equal(perm, torch.arange(n)) or (varied and torch.equal(frames[perm], frames))

    perm = torch.randperm(n, generator=generator)
    while n > 1 and unchanged(perm):
        perm = torch.randperm(n, generator=generator)
    video = replace(medium.video, frames=frames[perm])
    return Medium("video", video=video), perm.tolist()


def prompt_inputs(processor, row: dict, medium: Medium) -> BatchFeature:
    text = chat_text(processor, [user_message(row)], add_generation_prompt=True)
    return processor_inputs(processor, [text], [medium])


def rollout(
    backend: GenerationBackend,
    processor,
    rows: Sequence[dict],
    media: Sequence[Medium],
    *,
    num_generations: int,
    temporal: bool,
    sampling: SamplingConfig,
    seed: int,
) -> list[Group]:
    """Sample every group of a step in one ``generate`` call (the backend batches them together).

    Each of the G (and G/2 shuffled) requests is its own sample: the backends give every request of a call its
    own seed (vLLM) or draw them from one seeded generator (transformers), so a group's completions differ and
    the same ``seed`` reproduces them.
    """
    generator = torch.Generator().manual_seed(seed)
    requests, layout = [], []
    for row, medium in zip(rows, media):
        messages = [user_message(row)]
        shuffled, perm = (None, None)
        if temporal and medium.data_type == "video" and medium.num_frames > 1:
            shuffled, perm = shuffle_frames(medium, generator)
        n_shuffled = num_generations // 2 if shuffled is not None else 0
        requests += [GenerationRequest(messages, medium)] * num_generations
        requests += [GenerationRequest(messages, shuffled)] * n_shuffled
        layout.append((n_shuffled, perm))
    outputs = backend.generate(requests, replace(sampling, n=1, seed=seed))
    groups, k = [], 0
    for (row, medium), (n_shuffled, perm) in zip(zip(rows, media), layout):
        ordered = [o[0] for o in outputs[k : k + num_generations]]
        shuffled = [o[0] for o in outputs[k + num_generations : k + num_generations + n_shuffled]]
        k += num_generations + n_shuffled
        groups.append(Group(row, prompt_inputs(processor, row, medium), ordered, shuffled, perm))
    return groups


def distinct_completions(group: Group) -> int:
    """How many different completions the ordered group holds (G when sampling works; 1 when every copy is one)."""
    return len({tuple(c.token_ids) for c in group.ordered})
