"""DVC stage `base_model`: write models/base.

tiny profile: a tokenizer, processor and randomly initialised tiny model of
``base_model.family`` (Qwen2.5-VL, Qwen3-VL or Qwen3.5), made offline from a seed
and saved with save_pretrained (safetensors).
paper profile: check the local model directory (Qwen2.5-VL-7B-Instruct, or the
family's checkpoint) and link it; never download.
"""

from __future__ import annotations

import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from videor1.cot import ScriptedTeacher
from videor1.io import atomic_path
from videor1.models import (
    build_processor,
    build_tiny_model,
    build_tokenizer,
    check_model_dir,
    get_family,
    save_model_dir,
)
from videor1.params import BaseModelParams
from videor1.prompts import prompt_text

from .params import config, set_threads

OUT = Path("models/base")


def tokenizer_corpus(row_files: list[str], rationale_facts: str | None = None) -> list[str]:
    """What the tiny tokenizer must encode compactly: every prompt (question, options, instructions) and
    answer of the given row files and, with ``rationale_facts``, the scripted teacher's rationale for each
    row (the text the tiny model will learn to write in SFT)."""
    texts = []
    for f in row_files:
        rows = json.loads(Path(f).read_text())
        texts += [text for row in rows for text in (prompt_text(row), row["solution"])]
        if rationale_facts:
            teacher = ScriptedTeacher(rationale_facts)  # no spoils: the wording itself
            texts += [out.completion for out in teacher.complete(rows) if out.completion]
    return texts


def build_tiny(cfg: BaseModelParams) -> None:
    tok = cfg.tokenizer
    tokenizer = build_tokenizer(
        tok.kind, corpus=tokenizer_corpus(tok.corpus, tok.rationale_facts), vocab_size=tok.vocab_size
    )
    model = build_tiny_model(cfg.tiny_model(), tokenizer, cfg.family)
    processor = build_processor(tokenizer, family=cfg.family, **asdict(cfg.processor))
    save_model_dir(model, processor, OUT)
    n_params = sum(t.numel() for t in model.parameters())
    print(f"tiny {get_family(cfg.family).label}: {n_params:,} parameters, vocabulary {len(tokenizer)} -> {OUT}")


def link_local(cfg: BaseModelParams) -> None:
    try:
        source = check_model_dir(cfg.path).resolve()
        cfg.check_local_family()
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"base_model: {err}")
    with atomic_path(OUT) as tmp:
        os.symlink(source, tmp, target_is_directory=True)
    print(f"{OUT} -> {source}")


def main() -> None:
    cfg = config("base_model")
    set_threads(cfg.threads)
    if cfg.kind == "tiny":
        build_tiny(cfg)
    else:
        link_local(cfg)


if __name__ == "__main__":
    main()
