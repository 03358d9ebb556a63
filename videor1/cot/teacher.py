"""What a CoT teacher is, and the teacher that is a real model behind a generation backend."""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from ..generation import GenerationBackend, GenerationRequest, SamplingConfig, too_long
from ..media import MediaError, MediaRules, load_medium
from ..models.families import input_family
from ..prompts import user_message


@dataclass
class TeacherOutput:
    """A completion, or the reason the teacher could not process the row (then ``completion`` is None).

    ``retry``: the failure was the teacher's (an exception while generating), not the row's (unreadable media,
    an over-long prompt): the row is tried again on the next run, up to the stage's attempt cap.
    """

    completion: str | None
    error: str | None = None
    meta: dict = field(default_factory=dict)
    retry: bool = False


class TeacherDied(RuntimeError):
    """The teacher can process no row at all (its engine died): the stage stops, finished rows are kept."""


class Teacher(Protocol):
    def config(self) -> dict:
        """Everything that decides the teacher's outputs: part of the resume fingerprint."""
        ...

    def complete(self, rows: Sequence[dict]) -> list[TeacherOutput]:
        """One output per row, in order. Never raises for one bad row: that row gets an error."""
        ...


def engine_dead(err: BaseException) -> bool:
    """vLLM raises EngineDeadError once its engine core is gone: every later call would fail the same way."""
    return any(type(e).__name__ == "EngineDeadError" for e in (err, err.__cause__, err.__context__) if e is not None)


class ModelTeacher:
    """A VLM (transformers in process, or vLLM) writing a completion per row from the shared prompt."""

    def __init__(
        self,
        backend: GenerationBackend,
        processor,
        *,
        sampling: SamplingConfig,
        rules: MediaRules,
        max_prompt_tokens: int,
        model_signature: dict,
        backend_name: str,
        media_workers: int = 2,
    ):
        self.backend, self.processor, self.sampling = backend, processor, sampling
        self.rules = input_family(processor).media_rules(rules)  # frames resized for the processor's patches
        self.max_prompt_tokens = max_prompt_tokens
        self.signature, self.backend_name, self.media_workers = model_signature, backend_name, media_workers

    def config(self) -> dict:
        return {
            "teacher": self.backend_name,
            "model": self.signature,
            "sampling": asdict(self.sampling),
            "rules": asdict(self.rules),
            "max_prompt_tokens": self.max_prompt_tokens,
        }

    def _prepare(self, row: dict) -> tuple[GenerationRequest | None, str | None]:
        try:
            medium = load_medium(Path(row["media_root"]) / row["path"], row["data_type"], self.rules)
        except (MediaError, ValueError) as err:
            return None, f"unreadable media: {err}"
        messages = [user_message(row)]
        if reason := too_long(self.processor, messages, medium, self.max_prompt_tokens):
            return None, reason
        return GenerationRequest(messages, medium), None

    def _generate(self, requests: list[GenerationRequest]) -> list[TeacherOutput]:
        try:
            results = self.backend.generate(requests, self.sampling)
        except Exception as err:
            if engine_dead(err):
                raise TeacherDied(f"the teacher's engine died: {type(err).__name__}: {err}") from err
            if len(requests) == 1:
                return [TeacherOutput(None, f"teacher failed: {type(err).__name__}: {err}", retry=True)]
            # isolate the row that breaks the batch instead of losing the batch
            outputs = [out for r in requests for out in self._generate([r])]
            if all(o.retry for o in outputs):  # not one row: the teacher itself is broken, not the rows
                raise TeacherDied(
                    f"the teacher failed on every row of a batch of {len(requests)}; first: {outputs[0].error}"
                ) from err
            return outputs
        return [
            TeacherOutput(c[0].text, meta={"completion_tokens": len(c[0].token_ids), "finished": c[0].finished})
            for c in results
        ]

    def complete(self, rows: Sequence[dict]) -> list[TeacherOutput]:
        with ThreadPoolExecutor(max(1, self.media_workers)) as pool:
            prepared = list(pool.map(self._prepare, rows))
        ok = [req for req, err in prepared if err is None]
        generated = iter(self._generate(ok) if ok else [])
        return [next(generated) if err is None else TeacherOutput(None, err) for _, err in prepared]
