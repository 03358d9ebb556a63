"""Qwen2.5-VL (the paper's base): 14-pixel patches (28 per merged token), a windowed vision tower, M-RoPE whose
temporal ids follow absolute time through ``second_per_grid_ts`` (temporal patch / sampled fps)."""

from __future__ import annotations

from .base import ModelFamily


class Qwen2_5_VL(ModelFamily):
    name = "qwen2_5_vl"
    label = "Qwen2.5-VL"
    model_types = ("qwen2_5_vl",)
    patch_size = 14

    def model_class(self):
        from transformers import Qwen2_5_VLForConditionalGeneration

        return Qwen2_5_VLForConditionalGeneration

    def tiny_config(self, cfg, tokenizer):
        from transformers import Qwen2_5_VLConfig

        return Qwen2_5_VLConfig(
            text_config=dict(
                **cfg.text_sizes(tokenizer),
                rope_parameters={
                    "rope_type": "default",
                    "rope_theta": cfg.rope_theta,
                    "mrope_section": cfg.mrope_section,
                },
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
            **cfg.vision_token_ids(tokenizer),
            tie_word_embeddings=cfg.tie_word_embeddings,
        )

    def prepare(self, model):
        from ..rope import use_reference_positions

        use_reference_positions(model)  # transformers 5.x's positions of text after a video differ from the paper's
        return model

    def processor_class(self):
        from transformers import Qwen2_5_VLProcessor

        return Qwen2_5_VLProcessor

    def build_processor(self, tokenizer, *, image_min_pixels, image_max_pixels, video_min_pixels, video_max_pixels):
        from transformers import Qwen2_5_VLProcessor, Qwen2VLImageProcessor, Qwen2VLVideoProcessor

        from ..tokenizer import chat_template

        return Qwen2_5_VLProcessor(
            image_processor=Qwen2VLImageProcessor(
                size={"shortest_edge": image_min_pixels, "longest_edge": image_max_pixels}
            ),
            tokenizer=tokenizer,
            video_processor=Qwen2VLVideoProcessor(
                size={"shortest_edge": video_min_pixels, "longest_edge": video_max_pixels}
            ),
            chat_template=chat_template(),
        )

    def video_metadata(self, video):
        # the sampled fps sets second_per_grid_ts = temporal patch / fps, as qwen-vl-utils passes it for Qwen2.5-VL
        n = int(video.frames.shape[0])
        return {"total_num_frames": n, "fps": video.sample_fps, "frames_indices": list(range(n)), "duration": n / video.sample_fps}

    def video_placeholder_tokens(self, tokenizer, video):
        patches, per_patch = self.grid_tokens(video)
        return patches * per_patch


QWEN2_5_VL = Qwen2_5_VL()
