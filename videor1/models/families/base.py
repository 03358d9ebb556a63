"""What a model family is to this pipeline: its transformers classes, its tiny builder, its processor, its frame and
pixel factor, and the video metadata its processor needs. One subclass per family; nothing outside this package
branches on the family.
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING, ClassVar

if TYPE_CHECKING:
    from transformers import PretrainedConfig, PreTrainedModel, ProcessorMixin

    from ...media import MediaRules, Medium
    from ...media.video import SampledVideo
    from ..tiny import TinyModelConfig


class ModelFamily:
    name: ClassVar[str]  # base_model.family in params.yaml
    label: ClassVar[str]  # what the README and reports call it
    model_types: ClassVar[tuple[str, ...]]  # config.json's model_type for this family's checkpoints
    patch_size: ClassVar[int]  # vision patch side in pixels
    merge_size: ClassVar[int] = 2  # spatial merge: merge_size² patches become one LLM token
    temporal_patch_size: ClassVar[int] = 2  # frames per temporal patch
    # the prompt's key/value cache can be repeated for a group's G completions (transformers' cache of a
    # Gated DeltaNet layer cannot: Qwen3.5 runs G whole sequences instead)
    prompt_cache: ClassVar[bool] = True
    # vLLM's CPU build: what the family needs of it (Qwen3.5: chunked prefill for its mamba cache, bf16 kernels)
    vllm_chunked_prefill: ClassVar[bool] = False
    vllm_cpu_dtype: ClassVar[str | None] = None

    @property
    def factor(self) -> int:
        """Side of one merged vision token in pixels: every resized frame and image is a multiple of it."""
        return self.patch_size * self.merge_size

    def media_rules(self, rules: MediaRules) -> MediaRules:
        """``rules`` with this family's resize factor (params give pixel bounds; the factor is the model's)."""
        return replace(rules, factor=self.factor)

    # ----- the model -----------------------------------------------------------------------------------------

    def model_class(self) -> type[PreTrainedModel]:
        raise NotImplementedError

    def tiny_config(self, cfg: TinyModelConfig, tokenizer) -> PretrainedConfig:
        raise NotImplementedError

    def prepare(self, model: PreTrainedModel) -> PreTrainedModel:
        """What a loaded or built model of this family needs before use (nothing, unless a family says so)."""
        return model

    # ----- the processor and the inputs ------------------------------------------------------------------------

    def processor_class(self) -> type[ProcessorMixin]:
        raise NotImplementedError

    def build_processor(
        self, tokenizer, *, image_min_pixels: int, image_max_pixels: int, video_min_pixels: int, video_max_pixels: int
    ) -> ProcessorMixin:
        raise NotImplementedError

    def video_metadata(self, video: SampledVideo) -> dict:
        """The sampled frames' metadata as the processor (and vLLM) take it."""
        raise NotImplementedError

    def video_placeholder_tokens(self, tokenizer, video: SampledVideo) -> int:
        """How many tokens the one ``<|video_pad|>`` of the chat template becomes for ``video``."""
        raise NotImplementedError

    def placeholder_tokens(self, tokenizer, medium: Medium) -> int:
        """How many tokens the medium's one placeholder becomes once the processor expands it."""
        if medium.data_type == "image":
            h, w = medium.image.height, medium.image.width
            return (h // self.patch_size) * (w // self.patch_size) // self.merge_size**2
        return self.video_placeholder_tokens(tokenizer, medium.video)

    def check_sizes(self, media) -> None:
        """ValueError unless every image and frame is a multiple of this family's token side (media read under
        another family's rules would otherwise fail deep in the processor's patching, or be cropped)."""
        for medium in media:
            if medium is None:
                continue
            h, w = (
                (medium.image.height, medium.image.width)
                if medium.data_type == "image"
                else tuple(medium.video.frames.shape[-2:])
            )
            if h % self.factor or w % self.factor:
                raise ValueError(
                    f"a {medium.data_type} of {h}x{w} px is not in whole {self.factor}-px tokens of {self.label}: "
                    f"read media with this family's rules (ModelFamily.media_rules)"
                )

    def grid_tokens(self, video: SampledVideo) -> tuple[int, int]:
        """(temporal patches, merged tokens per temporal patch) of a sampled video."""
        t, _, h, w = video.frames.shape
        per_patch = (h // self.patch_size) * (w // self.patch_size) // self.merge_size**2
        return -(-t // self.temporal_patch_size), per_patch
