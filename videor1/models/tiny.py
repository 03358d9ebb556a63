"""A tiny, randomly initialised vision-language model of any supported family: the real transformers classes at
toy size.

Everything that makes a family what it is stays (videor1/models/families/): for Qwen2.5-VL the windowed vision
transformer with 3-D patches (temporal patch 2), the 2x2 patch merger and M-RoPE with absolute time alignment
(``tokens_per_second``); for Qwen3-VL its 16-pixel patches, DeepStack and timestamped video prompts; for Qwen3.5
its hybrid Gated DeltaNet decoder; GQA attention and the processor's placeholder expansion in all. Only the widths
and depths shrink, so the whole pipeline runs on a laptop CPU in minutes.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

import torch
from transformers import Qwen2Tokenizer

from ..params.check import ConfigError, above, at_least, require
from .families import get_family


@dataclass
class TinyModelConfig:
    """Sizes of the tiny model. Defaults follow spec section 8's measured model. A knob only one family has says so."""

    seed: int = 0
    hidden_size: int = 128
    intermediate_size: int = 256
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    mrope_section: list[int] = field(default_factory=lambda: [4, 6, 6])  # sums to head_dim / 2
    rope_theta: float = 1_000_000.0
    max_position_embeddings: int = 8192
    vision_depth: int = 2
    vision_hidden_size: int = 64
    vision_intermediate_size: int = 128
    vision_num_heads: int = 2
    vision_window_size: int = 112  # Qwen2.5-VL
    vision_fullatt_block_indexes: list[int] = field(default_factory=lambda: [1])  # Qwen2.5-VL
    tokens_per_second: int = 2  # Qwen2.5-VL: as the 7B, 2 M-RoPE time steps per second of video
    vision_num_position_embeddings: int = 256  # Qwen3-VL, Qwen3.5: a 16 x 16 grid of learned positions (a square)
    vision_deepstack_indexes: list[int] = field(default_factory=lambda: [0])  # Qwen3-VL: tower layers fed to the LLM
    full_attention_interval: int = 2  # Qwen3.5: every 2nd decoder layer full attention, the others Gated DeltaNet
    tie_word_embeddings: bool = True

    def __post_init__(self):
        sizes = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
        at_least(self, 1, *sizes, "vision_depth", "vision_hidden_size", "vision_intermediate_size", "vision_num_heads")
        at_least(self, 1, "max_position_embeddings", "vision_window_size", "tokens_per_second")
        at_least(self, 1, "vision_num_position_embeddings", "full_attention_interval")
        above(self, 0, "rope_theta")
        for size, heads in (("hidden_size", "num_attention_heads"), ("vision_hidden_size", "vision_num_heads")):
            require(
                getattr(self, size) % getattr(self, heads) == 0,
                size,
                f"must be a multiple of {heads} ({getattr(self, heads)}), got {getattr(self, size)}",
            )
        require(
            self.num_attention_heads % self.num_key_value_heads == 0,
            "num_key_value_heads",
            f"must divide num_attention_heads ({self.num_attention_heads}), got {self.num_key_value_heads}",
        )
        head_dim = self.hidden_size // self.num_attention_heads
        if len(self.mrope_section) != 3 or sum(self.mrope_section) * 2 != head_dim:
            raise ConfigError(
                "mrope_section", f"must be 3 numbers summing to head_dim/2 = {head_dim // 2}, got {self.mrope_section}"
            )
        for name in ("vision_fullatt_block_indexes", "vision_deepstack_indexes"):
            bad = [i for i in getattr(self, name) if not 0 <= i < self.vision_depth]
            require(not bad, name, f"must lie in [0, vision_depth), got {bad}")
        side = math.isqrt(self.vision_num_position_embeddings)
        require(
            side * side == self.vision_num_position_embeddings,
            "vision_num_position_embeddings",
            f"must be a square number (a grid of positions), got {self.vision_num_position_embeddings}",
        )

    def text_sizes(self, tokenizer: Qwen2Tokenizer) -> dict:
        """The decoder's sizes and special ids, as every family's text config names them."""
        ids = tokenizer.convert_tokens_to_ids
        return dict(
            vocab_size=len(tokenizer),
            hidden_size=self.hidden_size,
            intermediate_size=self.intermediate_size,
            num_hidden_layers=self.num_hidden_layers,
            num_attention_heads=self.num_attention_heads,
            num_key_value_heads=self.num_key_value_heads,
            max_position_embeddings=self.max_position_embeddings,
            bos_token_id=ids("<|endoftext|>"),
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
            tie_word_embeddings=self.tie_word_embeddings,
        )

    @staticmethod
    def vision_token_ids(tokenizer: Qwen2Tokenizer) -> dict:
        ids = tokenizer.convert_tokens_to_ids
        return dict(
            image_token_id=ids("<|image_pad|>"),
            video_token_id=ids("<|video_pad|>"),
            vision_start_token_id=ids("<|vision_start|>"),
            vision_end_token_id=ids("<|vision_end|>"),
        )


def tiny_config(cfg: TinyModelConfig, tokenizer: Qwen2Tokenizer, family: str = "qwen2_5_vl"):
    return get_family(family).tiny_config(cfg, tokenizer)


def build_tiny_model(cfg: TinyModelConfig, tokenizer: Qwen2Tokenizer, family: str = "qwen2_5_vl"):
    """Random weights from ``cfg.seed``: the same seed gives the same tensors, bit for bit."""
    kind = get_family(family)
    config = kind.tiny_config(cfg, tokenizer)
    with torch.random.fork_rng(devices=[]):  # CPU generator only; the caller's RNG state is untouched
        torch.manual_seed(cfg.seed)
        model = kind.model_class()(config)
    model.generation_config.eos_token_id = [config.text_config.eos_token_id]
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.config.videor1_tiny = asdict(cfg)  # recorded in config.json: how this model was made
    kind.prepare(model)
    return model.eval()


def build_processor(
    tokenizer: Qwen2Tokenizer,
    *,
    family: str = "qwen2_5_vl",
    image_min_pixels: int,
    image_max_pixels: int,
    video_min_pixels: int,
    video_max_pixels: int,
):
    """The family's real processor, with pixel bounds set for images and video frames."""
    return get_family(family).build_processor(
        tokenizer,
        image_min_pixels=image_min_pixels,
        image_max_pixels=image_max_pixels,
        video_min_pixels=video_min_pixels,
        video_max_pixels=video_max_pixels,
    )
