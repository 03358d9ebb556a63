"""A tiny, randomly initialised Qwen2.5-VL: the real transformers classes at toy size.

Everything that makes Qwen2.5-VL what it is stays: the windowed vision
transformer with 3-D patches (temporal patch 2), the 2x2 patch merger, M-RoPE
with absolute time alignment (``tokens_per_second``), GQA attention and the
processor's placeholder expansion. Only the widths and depths shrink, so the
whole pipeline runs on a laptop CPU in minutes.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

import torch
from transformers import (
    Qwen2_5_VLConfig,
    Qwen2_5_VLForConditionalGeneration,
    Qwen2_5_VLProcessor,
    Qwen2Tokenizer,
    Qwen2VLImageProcessor,
    Qwen2VLVideoProcessor,
)

from ..params.check import ConfigError, above, at_least, require
from .rope import use_reference_positions
from .tokenizer import chat_template


@dataclass
class TinyModelConfig:
    """Sizes of the tiny model. Defaults follow spec section 8's measured model."""

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
    vision_window_size: int = 112
    vision_fullatt_block_indexes: list[int] = field(default_factory=lambda: [1])
    tokens_per_second: int = 2  # as Qwen2.5-VL-7B: 2 M-RoPE time steps per second of video
    tie_word_embeddings: bool = True

    def __post_init__(self):
        sizes = ("hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads")
        at_least(self, 1, *sizes, "vision_depth", "vision_hidden_size", "vision_intermediate_size", "vision_num_heads")
        at_least(self, 1, "max_position_embeddings", "vision_window_size", "tokens_per_second")
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
        bad = [i for i in self.vision_fullatt_block_indexes if not 0 <= i < self.vision_depth]
        require(not bad, "vision_fullatt_block_indexes", f"must lie in [0, vision_depth), got {bad}")


def tiny_config(cfg: TinyModelConfig, tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLConfig:
    ids = tokenizer.convert_tokens_to_ids
    return Qwen2_5_VLConfig(
        text_config=dict(
            vocab_size=len(tokenizer),
            hidden_size=cfg.hidden_size,
            intermediate_size=cfg.intermediate_size,
            num_hidden_layers=cfg.num_hidden_layers,
            num_attention_heads=cfg.num_attention_heads,
            num_key_value_heads=cfg.num_key_value_heads,
            max_position_embeddings=cfg.max_position_embeddings,
            rope_parameters={"rope_type": "default", "rope_theta": cfg.rope_theta, "mrope_section": cfg.mrope_section},
            bos_token_id=ids("<|endoftext|>"),
            eos_token_id=ids("<|im_end|>"),
            pad_token_id=ids("<|endoftext|>"),
            tie_word_embeddings=cfg.tie_word_embeddings,
        ),
        vision_config=dict(
            depth=cfg.vision_depth,
            hidden_size=cfg.vision_hidden_size,
            intermediate_size=cfg.vision_intermediate_size,
            num_heads=cfg.vision_num_heads,
            out_hidden_size=cfg.hidden_size,
            window_size=cfg.vision_window_size,
            fullatt_block_indexes=list(cfg.vision_fullatt_block_indexes),
            tokens_per_second=cfg.tokens_per_second,
        ),
        image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"),
        vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"),
        tie_word_embeddings=cfg.tie_word_embeddings,
    )


def build_tiny_model(cfg: TinyModelConfig, tokenizer: Qwen2Tokenizer) -> Qwen2_5_VLForConditionalGeneration:
    """Random weights from ``cfg.seed``: the same seed gives the same tensors, bit for bit."""
    config = tiny_config(cfg, tokenizer)
    with torch.random.fork_rng(devices=[]):  # CPU generator only; the caller's RNG state is untouched
        torch.manual_seed(cfg.seed)
        model = Qwen2_5_VLForConditionalGeneration(config)
    model.generation_config.eos_token_id = [config.text_config.eos_token_id]
    model.generation_config.pad_token_id = config.text_config.pad_token_id
    model.config.videor1_tiny = asdict(cfg)  # recorded in config.json: how this model was made
    use_reference_positions(model)
    return model.eval()


def build_processor(
    tokenizer: Qwen2Tokenizer,
    *,
    image_min_pixels: int,
    image_max_pixels: int,
    video_min_pixels: int,
    video_max_pixels: int,
) -> Qwen2_5_VLProcessor:
    """The real Qwen2.5-VL processor, with pixel bounds set for images and video frames."""
    image_processor = Qwen2VLImageProcessor(size={"shortest_edge": image_min_pixels, "longest_edge": image_max_pixels})
    video_processor = Qwen2VLVideoProcessor(size={"shortest_edge": video_min_pixels, "longest_edge": video_max_pixels})
    return Qwen2_5_VLProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        video_processor=video_processor,
        chat_template=chat_template(),
    )
