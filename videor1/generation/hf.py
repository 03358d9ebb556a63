"""In-process generation with transformers (CPU or GPU), batched, vision tokens suppressed."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import contextmanager

import torch
from transformers import GenerationConfig

from ..models import VISION_TOKENS
from .base import Completion, GenerationRequest, PromptTooLong, SamplingConfig
from .inputs import chat_text, processor_inputs, too_long


def end_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a completion: the tokenizer's eos and the model's generation-config eos."""
    ids = {tokenizer.eos_token_id}
    eos = model.generation_config.eos_token_id
    ids.update(eos if isinstance(eos, (list, tuple)) else [eos])
    return sorted(i for i in ids if i is not None)


def vision_token_ids(tokenizer) -> list[int]:
    """Placeholder tokens only the processor may place: sampling one would desynchronise the vision inputs."""
    return [tokenizer.convert_tokens_to_ids(t) for t in VISION_TOKENS]


def cut_at_end(ids: list[int], end_ids: set[int], pad_id: int | None) -> tuple[list[int], bool]:
    """Ids up to and including the first end token (and whether there was one); trailing padding dropped."""
    for k, t in enumerate(ids):
        if t in end_ids:
            return ids[: k + 1], True
    while ids and pad_id is not None and ids[-1] == pad_id and pad_id not in end_ids:
        ids = ids[:-1]
    return ids, False


@contextmanager
def only_our_decoding(model, config: GenerationConfig):
    """transformers fills every knob a call leaves unset from ``model.generation_config`` (the checkpoint's
    repetition penalty, top_k, ...): swap in one that holds only the special tokens for the call."""
    saved = model.generation_config
    model.generation_config = config
    try:
        yield
    finally:
        model.generation_config = saved


class TransformersBackend:
    """``GenerationBackend`` over a loaded ``Qwen2_5_VLForConditionalGeneration`` and its processor."""

    def __init__(self, model, processor, *, batch_size: int = 8):
        self.model = model
        self.processor = processor
        self.batch_size = batch_size
        self.tokenizer = processor.tokenizer
        self.end_ids = end_token_ids(model, self.tokenizer)
        self.suppress_ids = vision_token_ids(self.tokenizer)
        self.clean_config = GenerationConfig(
            eos_token_id=self.end_ids,
            pad_token_id=self.tokenizer.pad_token_id,
            bos_token_id=model.generation_config.bos_token_id,
        )

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def sync_weights(self, named_tensors) -> None:
        """Copy new weights (full tensors by transformers name) into this backend's model one at a time, as they
        stream in: used when it samples from its own copy of a policy that trains elsewhere (an FSDP-sharded one)."""
        own, seen = self.model.state_dict(), set()
        with torch.no_grad():
            for name, tensor in named_tensors:
                if name not in own:
                    raise KeyError(f"sync_weights: {name!r} is not a weight of the rollout model")
                own[name].copy_(tensor)
                seen.add(name)
        if missing := sorted(own.keys() - seen):
            raise KeyError(f"sync_weights: no new value for {len(missing)} weights, e.g. {missing[0]!r}")

    def offload(self) -> None:
        """Nothing to free: the model's weights are its whole state."""

    def prompt_limit(self, sampling: SamplingConfig) -> int:
        """The longest prompt that leaves room for ``max_new_tokens`` within the model's positions."""
        return self.model.config.text_config.max_position_embeddings - sampling.max_new_tokens

    @torch.inference_mode()
    def _generate_batch(
        self, requests: Sequence[GenerationRequest], sampling: SamplingConfig, seed: int
    ) -> list[list[Completion]]:
        texts = [chat_text(self.processor, r.messages, add_generation_prompt=True) for r in requests]
        inputs = processor_inputs(self.processor, texts, [r.medium for r in requests]).to(self.device)
        do_sample = sampling.temperature > 0
        with (
            torch.random.fork_rng(devices=[self.device] if self.device.type == "cuda" else []),
            only_our_decoding(self.model, self.clean_config),
        ):
            torch.manual_seed(seed)
            out = self.model.generate(
                **inputs,
                do_sample=do_sample,
                temperature=sampling.temperature if do_sample else None,
                top_p=sampling.top_p if do_sample else None,
                top_k=sampling.top_k if do_sample else None,
                repetition_penalty=sampling.repetition_penalty,
                max_new_tokens=sampling.max_new_tokens,
                num_return_sequences=sampling.n,
                suppress_tokens=self.suppress_ids,
            )
        new = out[:, inputs["input_ids"].shape[1] :].tolist()
        ends = set(self.end_ids)
        completions = []
        for ids in new:
            ids, finished = cut_at_end(ids, ends, self.tokenizer.pad_token_id)
            text = self.tokenizer.decode(ids, skip_special_tokens=True)
            completions.append(Completion(text=text, token_ids=ids, finished=finished))
        n = sampling.n
        return [completions[i * n : (i + 1) * n] for i in range(len(requests))]

    def generate(self, requests: Sequence[GenerationRequest], sampling: SamplingConfig) -> list[list[Completion]]:
        limit = self.prompt_limit(sampling)
        for r in requests:
            if reason := too_long(self.processor, r.messages, r.medium, limit):
                raise PromptTooLong(f"{reason}: check lengths with generation.too_long before generating")
        results = []
        for start in range(0, len(requests), self.batch_size):
            batch = requests[start : start + self.batch_size]
            results += self._generate_batch(batch, sampling, seed=sampling.seed + start)
        return results
