"""SFT examples and batches: the CoT rows as chats, with the loss on the assistant's tokens only.

A training example is the user turn (the row's medium and the shared prompt) and
the assistant turn ``process + "\\n" + solution`` (spec section 1). Labels are the
input ids with everything but the assistant's reply masked: the system and user
turns, vision placeholders, padding, and the newline after ``<|im_end|>``. (The
public code trains on the prompt too and its collator works only at batch size 1.)

A row whose medium cannot be read at train time is dropped from its batch and
reported through ``on_skip`` with the reason; no other sample takes its place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch.utils.data import Dataset

from ..generation import chat_text, processor_inputs
from ..media import MediaError, MediaRules, load_medium
from ..prompts import assistant_message, user_message

IGNORE_INDEX = -100


def assistant_text(row: dict) -> str:
    """``process`` newline ``solution``; a direct-answer row (``process`` None: the toy's perception
    pretraining) is its solution alone."""
    return row["solution"] if row["process"] is None else f"{row['process']}\n{row['solution']}"


def chat(row: dict) -> list[dict]:
    return [user_message(row), assistant_message(assistant_text(row))]


class SftDataset(Dataset):
    """Rows with ``media_root``, ``path``, ``data_type``, ``process``, ``solution``; items are (row, medium or error)."""

    def __init__(self, rows: Sequence[dict], rules: MediaRules):
        self.rows, self.rules = list(rows), rules

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict:
        row = self.rows[i]
        try:
            medium = load_medium(Path(row["media_root"]) / row["path"], row["data_type"], self.rules)
            return {"row": row, "medium": medium, "error": None}
        except (MediaError, ValueError) as err:
            return {"row": row, "medium": None, "error": str(err)}


def empty_batch() -> dict:
    """What a batch whose every example was skipped becomes: no inputs, and labels that count zero tokens."""
    return {"problem_ids": [], "labels": torch.empty(0, dtype=torch.long)}


def assistant_start(input_ids: torch.Tensor, header: list[int]) -> int:
    """Index of the first token after the last ``<|im_start|>assistant\\n`` header, or len(input_ids) if absent."""
    ids, n = input_ids.tolist(), len(header)
    for start in range(len(ids) - n, -1, -1):
        if ids[start : start + n] == header:
            return start + n
    return len(ids)


@dataclass
class SftCollator:
    """Pads a batch of mixed image and video examples and builds labels for the assistant turn only."""

    processor: object
    max_length: int | None = None
    on_skip: Callable[[dict, str], None] | None = None
    # Several processes: a micro-batch whose every row was skipped becomes this (readable) example, marked so the
    # trainer weighs it 0: that rank still runs the forward and backward whose collectives the other ranks wait on.
    placeholder: dict | None = None

    def __post_init__(self):
        tok = self.processor.tokenizer
        self.header = tok("<|im_start|>assistant\n", add_special_tokens=False)["input_ids"]
        self.end_id = tok.convert_tokens_to_ids("<|im_end|>")

    def _skip(self, row: dict, reason: str) -> None:
        if self.on_skip:
            self.on_skip(row, reason)

    def __call__(self, examples: list[dict]) -> dict:
        good = []
        for ex in examples:
            if ex["error"] is not None:
                self._skip(ex["row"], ex["error"])
            else:
                good.append(ex)
        return self._collate(good, self.max_length)

    def _collate(self, good: list[dict], max_length: int | None) -> dict:
        if not good:
            return self._placeholder_batch()
        texts = [chat_text(self.processor, chat(ex["row"]), add_generation_prompt=False) for ex in good]
        batch = processor_inputs(self.processor, texts, [ex["medium"] for ex in good], padding_side="right")
        if max_length is not None and batch["input_ids"].shape[1] > max_length:
            lengths = batch["attention_mask"].sum(1).tolist()
            keep = [ex for ex, n in zip(good, lengths) if n <= max_length]
            for ex, n in zip(good, lengths):
                if n > max_length:
                    self._skip(ex["row"], f"sequence too long: {n} tokens > {max_length}")
            return self._collate(keep, max_length)
        labels = batch["input_ids"].clone()
        for i in range(labels.shape[0]):
            start = assistant_start(batch["input_ids"][i], self.header)
            labels[i, :start] = IGNORE_INDEX
            reply = (batch["input_ids"][i, start:] == self.end_id).nonzero()
            if len(reply):  # keep <|im_end|> (the model must learn to stop), mask what follows it
                labels[i, start + int(reply[0]) + 1 :] = IGNORE_INDEX
        labels[batch["attention_mask"] == 0] = IGNORE_INDEX
        batch["labels"] = labels
        batch["problem_ids"] = [ex["row"]["problem_id"] for ex in good]
        return dict(batch)

    def _placeholder_batch(self) -> dict:
        if self.placeholder is None:
            return empty_batch()
        # never cut by max_length (it counts no token): a placeholder over the limit would otherwise recurse forever
        batch = self._collate([self.placeholder], None)
        batch["labels"] = torch.full_like(batch["labels"], IGNORE_INDEX)  # counts no token anywhere
        return {**batch, "problem_ids": [], "placeholder": True}
