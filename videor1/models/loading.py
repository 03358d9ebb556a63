"""Loading and saving model directories. Local directories only: nothing is ever downloaded."""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch
from transformers import AutoProcessor, PreTrainedModel, ProcessorMixin

from ..io import atomic_path
from .families import family_of

REQUIRED_FILES = ("config.json", "tokenizer_config.json")
PROCESSOR_FILES = ("processor_config.json", "preprocessor_config.json")  # transformers 5 writes the first, hub models ship the second


def check_model_dir(path: str | Path) -> Path:
    """Raise FileNotFoundError naming what is missing unless ``path`` is a complete HF model directory."""
    path = Path(path)
    if not path.is_dir():
        raise FileNotFoundError(f"model directory {path} does not exist (models are never downloaded: put it there)")
    missing = [f for f in REQUIRED_FILES if not (path / f).is_file()]
    if not any((path / f).is_file() for f in PROCESSOR_FILES):
        missing.append(" or ".join(PROCESSOR_FILES))
    if not any(path.glob("*.safetensors")):
        missing.append("*.safetensors")
    if missing:
        raise FileNotFoundError(f"model directory {path} is incomplete: missing {', '.join(missing)}")
    return path


ATTENTION = ("sdpa", "eager", "flash_attention_2")


def check_attention(name: str) -> str:
    """``name`` if transformers can run it here, else ValueError in one line. sdpa (PyTorch's fused attention) is the
    default; flash_attention_2 needs the flash-attn package, which only a CUDA machine can build."""
    if name not in ATTENTION:
        raise ValueError(f"attn_implementation must be one of {', '.join(ATTENTION)}, got {name!r}")
    if name == "flash_attention_2":
        from transformers.utils import is_flash_attn_2_available

        if not is_flash_attn_2_available():
            raise ValueError("attn_implementation: flash_attention_2 needs the flash-attn package and a CUDA GPU, "
                             "not importable here: use sdpa (or install flash-attn where the machine allows it)")
    return name


def load_model(path: str | Path, *, dtype: torch.dtype | str = torch.float32, device: str = "cpu",
               attn_implementation: str = "sdpa") -> PreTrainedModel:
    """A model directory's model (its family's class, from config.json) in ``dtype`` ("auto": the checkpoint's own)
    on ``device``, with the given attention (text and vision towers alike)."""
    path = check_model_dir(path)
    family = family_of(path)
    model = family.model_class().from_pretrained(path, dtype=dtype, local_files_only=True,
                                                 attn_implementation=check_attention(attn_implementation))
    family.prepare(model)
    return model.to(device).eval()


def empty_model(path: str | Path, *, dtype: torch.dtype = torch.float32,
                attn_implementation: str = "sdpa") -> PreTrainedModel:
    """The model of a directory with its parameters on the meta device (no memory, no weights read) and its
    buffers real: rotary ``inv_freq`` is computed at construction and is not in the checkpoint."""
    from accelerate import init_empty_weights
    from transformers import AutoConfig

    config = AutoConfig.from_pretrained(check_model_dir(path), local_files_only=True,
                                        attn_implementation=check_attention(attn_implementation))
    family = family_of(config)
    with init_empty_weights(include_buffers=False):
        model = family.model_class()._from_config(config, dtype=dtype)
    model.tie_weights()  # as from_pretrained does: a tied LM head is the embedding itself
    family.prepare(model)
    return model.eval()


def load_processor(path: str | Path) -> ProcessorMixin:
    return AutoProcessor.from_pretrained(check_model_dir(path), local_files_only=True)


def save_model_dir(model, processor, target: str | Path) -> None:
    """Write model (safetensors) and processor to ``target`` in one atomic rename."""
    with atomic_path(target) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        processor.save_pretrained(tmp)


def model_signature(path: str | Path, *, hash_limit: int = 64 << 20) -> dict[str, str]:
    """What identifies a model directory's weights: content hashes of files up to ``hash_limit`` bytes,
    size and mtime of larger ones (hashing 16 GB per run would cost minutes)."""
    root = Path(path).resolve()
    signature = {}
    for f in sorted(p for p in root.rglob("*") if p.is_file()):
        st = f.stat()
        rel = str(f.relative_to(root))
        if st.st_size <= hash_limit:
            signature[rel] = hashlib.sha256(f.read_bytes()).hexdigest()
        else:
            signature[rel] = f"size={st.st_size},mtime_ns={st.st_mtime_ns}"
    return signature
