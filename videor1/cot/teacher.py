"""What a CoT teacher is, and the teacher that is a real model behind a generation backend."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from ..generation import GenerationBackend, GenerationRequest, SamplingConfig, chat_text
from ..media import MediaError, MediaRules, Medium, load_medium
from ..prompts import user_message


@dataclass
class TeacherOutput:
    """A completion, or the reason the teacher could not process the row (then ``completion`` is None)."""

    completion: str | None
    error: str | None = None
    meta: dict = field(default_factory=dict)


class Teacher(Protocol):
    def config(self) -> dict:
        """Everything that decides the teacher's outputs: part of the resume fingerprint."""
        ...

    def complete(self, rows: Sequence[dict]) -> list[TeacherOutput]:
        """One output per row, in order. Never raises for one bad row: that row gets an error."""
        ...


def media_tokens(medium: Medium | None, merge: int = 2, patch: int = 14, temporal: int = 2) -> int:
    """How many placeholder tokens the processor will expand the medium into (Qwen2.5-VL's 2x2 merge)."""
    if medium is None:
        return 0
    if medium.data_type == "image":
        h, w = medium.image.height, medium.image.width
        return (h // patch) * (w // patch) // (merge * merge)
    t, _, h, w = medium.video.frames.shape
    return -(-t // temporal) * (h // patch) * (w // patch) // (merge * merge)


class ModelTeacher:
    """A VLM (transformers in process, or vLLM) writing a completion per row from the shared prompt."""

    def __init__(self, backend: GenerationBackend, processor, *, sampling: SamplingConfig, rules: MediaRules,
                 max_prompt_tokens: int, model_signature: dict, backend_name: str, media_workers: int = 2):
        self.backend, self.processor, self.sampling, self.rules = backend, processor, sampling, rules
        self.max_prompt_tokens = max_prompt_tokens
        self.signature, self.backend_name, self.media_workers = model_signature, backend_name, media_workers

    def config(self) -> dict:
        return {"teacher": self.backend_name, "model": self.signature, "sampling": asdict(self.sampling),
                "rules": asdict(self.rules), "max_prompt_tokens": self.max_prompt_tokens}

    def _prepare(self, row: dict) -> tuple[GenerationRequest | None, str | None]:
        try:
            medium = load_medium(Path(row["media_root"]) / row["path"], row["data_type"], self.rules)
        except (MediaError, ValueError) as err:
            return None, f"unreadable media: {err}"
        messages = [user_message(row)]
        n = len(self.processor.tokenizer(chat_text(self.processor, messages, add_generation_prompt=True))["input_ids"])
        n += media_tokens(medium) - 1  # the one placeholder becomes that many tokens
        if n > self.max_prompt_tokens:
            return None, f"prompt too long: {n} tokens > {self.max_prompt_tokens}"
        return GenerationRequest(messages, medium), None

    def _generate(self, requests: list[GenerationRequest]) -> list[TeacherOutput]:
        try:
            results = self.backend.generate(requests, self.sampling)
        except Exception as err:  # isolate the row that breaks the batch instead of losing the batch
            if len(requests) == 1:
                return [TeacherOutput(None, f"teacher failed: {type(err).__name__}: {err}")]
            return [out for r in requests for out in self._generate([r])]
        return [TeacherOutput(c[0].text, meta={"completion_tokens": len(c[0].token_ids), "finished": c[0].finished})
                for c in results]

    def complete(self, rows: Sequence[dict]) -> list[TeacherOutput]:
        with ThreadPoolExecutor(max(1, self.media_workers)) as pool:
            prepared = list(pool.map(self._prepare, rows))
        ok = [req for req, err in prepared if err is None]
        generated = iter(self._generate(ok) if ok else [])
        return [next(generated) if err is None else TeacherOutput(None, err) for _, err in prepared]
