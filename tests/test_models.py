"""Tiny model kit: Qwen tokenizers, chat template, deterministic weights, processor + forward, local loading."""

from __future__ import annotations

import hashlib

import pytest
import torch
from transformers.video_utils import VideoMetadata

from videor1.models import (
    QWEN25_SPECIAL_TOKENS,
    TinyModelConfig,
    build_processor,
    build_tiny_model,
    check_model_dir,
    load_model,
    load_processor,
    qwen_tokenizer,
    save_model_dir,
    train_bpe_tokenizer,
)

CORPUS = ["In which direction does the red square move?", "A. left", "B. right", "<answer>B</answer>"] * 20
VIDEO_TURN = [{"role": "user", "content": [{"type": "video"}, {"type": "text", "text": "Which way?"}]}]
EXPECTED_PROMPT = (
    "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n"
    "<|vision_start|><|video_pad|><|vision_end|>Which way?<|im_end|>\n<|im_start|>assistant\n"
)


@pytest.fixture(scope="module")
def bpe():
    return train_bpe_tokenizer(CORPUS, 300)


def test_real_qwen_vocabulary_has_qwen25_ids():
    tok = qwen_tokenizer()
    assert len(tok) == 151_665
    assert tok.convert_tokens_to_ids(list(QWEN25_SPECIAL_TOKENS)) == list(range(151_643, 151_665))
    assert tok("Hello world")["input_ids"] == [9707, 1879]  # the released Qwen2.5 ids
    assert tok.apply_chat_template(VIDEO_TURN, tokenize=False, add_generation_prompt=True) == EXPECTED_PROMPT


def test_local_bpe_renders_the_same_template(bpe):
    assert bpe.apply_chat_template(VIDEO_TURN, tokenize=False, add_generation_prompt=True) == EXPECTED_PROMPT
    ids = bpe("x <|video_pad|><|image_pad|>")["input_ids"]
    assert ids[-2:] == bpe.convert_tokens_to_ids(["<|video_pad|>", "<|image_pad|>"])  # one token each
    assert bpe.decode(bpe("<think>left</think>")["input_ids"]) == "<think>left</think>"
    assert train_bpe_tokenizer(CORPUS, 300).get_vocab() == bpe.get_vocab()  # deterministic


def test_same_seed_same_weight_bytes(bpe, tmp_path):
    proc = build_processor(
        bpe, image_min_pixels=3136, image_max_pixels=7056, video_min_pixels=3136, video_max_pixels=3136
    )
    digests = []
    for name, seed in (("a", 0), ("b", 0), ("c", 1)):
        save_model_dir(build_tiny_model(TinyModelConfig(seed=seed), bpe), proc, tmp_path / name)
        digests.append(hashlib.sha256((tmp_path / name / "model.safetensors").read_bytes()).hexdigest())
    assert digests[0] == digests[1] != digests[2]


def test_saved_dir_loads_and_video_reaches_the_forward(bpe, tmp_path):
    proc = build_processor(
        bpe, image_min_pixels=3136, image_max_pixels=7056, video_min_pixels=3136, video_max_pixels=3136
    )
    save_model_dir(build_tiny_model(TinyModelConfig(), bpe), proc, tmp_path / "m")
    model, processor = load_model(tmp_path / "m"), load_processor(tmp_path / "m")
    assert type(model).__name__ == "Qwen2_5_VLForConditionalGeneration"
    assert type(processor).__name__ == "Qwen2_5_VLProcessor"
    text = processor.apply_chat_template(VIDEO_TURN, tokenize=False, add_generation_prompt=True)
    torch.manual_seed(0)
    frames = torch.randint(0, 256, (8, 3, 56, 56), dtype=torch.uint8)
    meta = VideoMetadata(total_num_frames=8, fps=2.0, frames_indices=list(range(8)))
    kwargs = {"video_metadata": [meta], "do_sample_frames": False, "do_resize": False}

    def logits(video):
        inputs = processor(text=[text], videos=[video], videos_kwargs=kwargs, return_tensors="pt")
        assert inputs["video_grid_thw"].tolist() == [[4, 4, 4]]  # 8 frames of 56x56: 4 x 4 x 4 patches
        assert (inputs["input_ids"] == model.config.video_token_id).sum() == 16  # 2x2 merge -> 16 tokens
        assert inputs["second_per_grid_ts"].tolist() == [1.0]  # temporal patch 2 / 2 fps
        assert "mm_token_type_ids" in inputs
        with torch.no_grad():
            return model(**inputs).logits

    assert not torch.allclose(logits(frames), logits(frames.flip(0)))  # frame order changes the output


def test_check_model_dir_names_what_is_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        check_model_dir(tmp_path / "Qwen2.5-VL-7B-Instruct")
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    with pytest.raises(FileNotFoundError, match="tokenizer_config.json.*safetensors"):
        check_model_dir(tmp_path / "m")


def test_attention_is_chosen_in_one_place_and_reaches_both_towers(tiny_model_dir):
    """``attn_implementation`` (params: one anchor per profile, read by sft, rl, cot and eval): the text and the
    vision tower both run it, loaded or built on the meta device; eager and sdpa give the same numbers."""
    import torch

    from videor1.models import check_attention, empty_model, load_model

    models = {name: load_model(tiny_model_dir, attn_implementation=name) for name in ("sdpa", "eager")}
    for name, model in models.items():
        assert model.config._attn_implementation == model.config.vision_config._attn_implementation == name
        assert empty_model(tiny_model_dir, attn_implementation=name).config.vision_config._attn_implementation == name
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        sdpa, eager = (m(input_ids=ids, attention_mask=torch.ones_like(ids)).logits for m in models.values())
    assert torch.allclose(sdpa, eager, atol=1e-5)
    with pytest.raises(ValueError, match="must be one of"):
        check_attention("flash")
