"""Qwen3-VL: 16-pixel patches (32 per merged token), DeepStack (vision features of early tower layers added to the
first decoder layers), interleaved M-RoPE, and video time written into the prompt as text: ``<t seconds>`` before
each temporal patch's vision block, t the mean time of its two frames in the source video. So the processor and
vLLM get the source's fps and the sampled frames' indices in it (without them the processor assumes 24 fps)."""

from __future__ import annotations

from .base import ModelFamily


def patch_times(indices: list[int], fps: float, temporal_patch_size: int = 2) -> list[float]:
    """Each temporal patch's time in seconds as Qwen3-VL's processor computes it: the mean of its first and last
    frame's ``index / fps`` (the last frame repeated to fill a patch)."""
    indices = list(indices)
    if len(indices) % temporal_patch_size:
        indices += [indices[-1]] * (temporal_patch_size - len(indices) % temporal_patch_size)
    times = [i / fps for i in indices]
    return [(times[i] + times[i + temporal_patch_size - 1]) / 2 for i in range(0, len(times), temporal_patch_size)]


class Qwen3_VL(ModelFamily):
    name = "qwen3_vl"
    label = "Qwen3-VL"
    model_types = ("qwen3_vl",)
    patch_size = 16

    def model_class(self):
        from transformers import Qwen3VLForConditionalGeneration

        return Qwen3VLForConditionalGeneration

    def vision_config(self, cfg) -> dict:
        return dict(
            depth=cfg.vision_depth,
            hidden_size=cfg.vision_hidden_size,
            intermediate_size=cfg.vision_intermediate_size,
            num_heads=cfg.vision_num_heads,
            patch_size=self.patch_size,
            out_hidden_size=cfg.hidden_size,
            num_position_embeddings=cfg.vision_num_position_embeddings,
        )

    def rope_parameters(self, cfg) -> dict:
        return {
            "rope_type": "default",
            "rope_theta": cfg.rope_theta,
            "mrope_section": cfg.mrope_section,
            "mrope_interleaved": True,
        }

    def tiny_config(self, cfg, tokenizer):
        from transformers import Qwen3VLConfig

        return Qwen3VLConfig(
            text_config=dict(
                **cfg.text_sizes(tokenizer),
                head_dim=cfg.hidden_size // cfg.num_attention_heads,
                rope_parameters=self.rope_parameters(cfg),
            ),
            vision_config=dict(
                **self.vision_config(cfg), deepstack_visual_indexes=list(cfg.vision_deepstack_indexes)
            ),
            **cfg.vision_token_ids(tokenizer),
            tie_word_embeddings=cfg.tie_word_embeddings,
        )

    def processor_class(self):
        from transformers import Qwen3VLProcessor

        return Qwen3VLProcessor

    def build_processor(self, tokenizer, *, image_min_pixels, image_max_pixels, video_min_pixels, video_max_pixels):
        from transformers import Qwen2VLImageProcessor, Qwen3VLProcessor, Qwen3VLVideoProcessor

        from ..tokenizer import chat_template

        return Qwen3VLProcessor(
            # normalised as the video frames are, with mean = std = 0.5 (the released Qwen3-VL processors)
            image_processor=Qwen2VLImageProcessor(
                patch_size=self.patch_size,
                merge_size=self.merge_size,
                image_mean=[0.5, 0.5, 0.5],
                image_std=[0.5, 0.5, 0.5],
                size={"shortest_edge": image_min_pixels, "longest_edge": image_max_pixels},
            ),
            tokenizer=tokenizer,
            # frames arrive sampled and resized (do_sample_frames, do_resize off): the size is recorded, not applied
            video_processor=Qwen3VLVideoProcessor(
                patch_size=self.patch_size,
                merge_size=self.merge_size,
                size={"shortest_edge": video_min_pixels, "longest_edge": video_max_pixels},
            ),
            chat_template=chat_template(),
        )

    def video_metadata(self, video):
        # the source's fps and the sampled frames' indices in it: the prompt's timestamps are the frames' true times
        info = video.info
        return {
            "total_num_frames": info.total_frames,
            "fps": info.fps,
            "frames_indices": list(video.indices),
            "duration": info.total_frames / info.fps,
        }

    def timestamps(self, video) -> list[float]:
        return patch_times(video.indices, video.info.fps, self.temporal_patch_size)

    def video_placeholder_tokens(self, tokenizer, video):
        # per temporal patch: "<t seconds>", <|vision_start|>, its tokens, <|vision_end|> (the processor's blocks)
        patches, per_patch = self.grid_tokens(video)
        stamps = sum(len(tokenizer(f"<{t:.1f} seconds>")["input_ids"]) for t in self.timestamps(video))
        return stamps + patches * (per_patch + 2)


QWEN3_VL = Qwen3_VL()
