"""Models: the families (videor1/models/families/), the offline tiny-model kit and local loading."""

from .families import FAMILIES, ModelFamily, family_of, get_family, input_family

from .loading import ATTENTION, check_attention, check_model_dir, empty_model, load_model, load_processor, model_signature, save_model_dir
from .rope import reference_rope_index, use_reference_positions
from .tiny import TinyModelConfig, build_processor, build_tiny_model, tiny_config
from .tokenizer import QWEN25_SPECIAL_TOKENS, VISION_TOKENS, build_tokenizer, chat_template, qwen_tokenizer, train_bpe_tokenizer

__all__ = [
    "FAMILIES",
    "ModelFamily",
    "family_of",
    "get_family",
    "input_family",
    "QWEN25_SPECIAL_TOKENS",
    "VISION_TOKENS",
    "TinyModelConfig",
    "build_processor",
    "build_tiny_model",
    "build_tokenizer",
    "chat_template",
    "ATTENTION",
    "check_attention",
    "check_model_dir",
    "empty_model",
    "load_model",
    "load_processor",
    "model_signature",
    "qwen_tokenizer",
    "save_model_dir",
    "tiny_config",
    "train_bpe_tokenizer",
    "reference_rope_index",
    "use_reference_positions",
]
