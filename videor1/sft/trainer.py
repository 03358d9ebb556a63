"""SFT cold start on transformers' Trainer: our collator, checkpoints that resume after kill -9, logs.

Trainer brings what a researcher expects from a launch on one CPU or many GPUs
(accelerate / torchrun, DeepSpeed ZeRO-2/3, bf16, gradient checkpointing) and
checkpoints holding model, optimizer, scheduler, RNG and the position in the data
order, from which ``train`` resumes. Two things are added: the batch may hold
rows whose media could not be read (dropped, logged, never replaced), and every
micro-batch's problem ids are logged, so the data order can be checked.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import PreTrainedModel, SchedulerType, Trainer, TrainingArguments

from ..configs import DEEPSPEED_CONFIGS, deepspeed_config
from ..io import append_jsonl
from ..params.check import above, at_least, one_of, require
from .vision import dummy_vision_inputs, use_one_vision_call

CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")


@dataclass
class SftConfig:
    """Training hyperparameters. Defaults are the paper's SFT values (spec section 1)."""

    output_dir: str = "models/sft-checkpoints"
    epochs: float = 1.0
    max_steps: int = -1  # > 0 overrides epochs
    learning_rate: float = 1e-6
    lr_scheduler: str = "cosine"
    warmup_steps: float = 0.0  # >= 1: steps; < 1: share of all steps (transformers 5)
    weight_decay: float = 0.0
    per_device_batch_size: int = 1
    gradient_accumulation_steps: int = 2
    max_grad_norm: float = 5.0
    bf16: bool = True
    gradient_checkpointing: bool = True
    deepspeed: str | None = "zero2"
    save_steps: int = 500
    save_total_limit: int = 2
    logging_steps: int = 1
    seed: int = 0
    dataloader_workers: int = 0
    use_cpu: bool = False

    def __post_init__(self):
        above(self, 0, "epochs", "learning_rate", "max_grad_norm")
        require(self.max_steps == -1 or self.max_steps >= 1, "max_steps", f"must be -1 or >= 1 (got {self.max_steps})")
        at_least(self, 0, "warmup_steps", "weight_decay", "dataloader_workers")
        at_least(self, 1, "per_device_batch_size", "gradient_accumulation_steps", "save_steps", "logging_steps")
        at_least(self, 1, "save_total_limit")
        one_of(self, "lr_scheduler", [s.value for s in SchedulerType])
        require(
            self.deepspeed in (None, "", "none", *DEEPSPEED_CONFIGS) or str(self.deepspeed).endswith(".json"),
            "deepspeed",
            f"must be one of {', '.join(DEEPSPEED_CONFIGS)}, null or a .json file (got {self.deepspeed!r})",
        )

    def training_arguments(self) -> TrainingArguments:
        return TrainingArguments(
            output_dir=self.output_dir,
            num_train_epochs=self.epochs,
            max_steps=self.max_steps,
            learning_rate=self.learning_rate,
            lr_scheduler_type=self.lr_scheduler,
            warmup_steps=self.warmup_steps,
            weight_decay=self.weight_decay,
            per_device_train_batch_size=self.per_device_batch_size,
            gradient_accumulation_steps=self.gradient_accumulation_steps,
            max_grad_norm=self.max_grad_norm,
            bf16=self.bf16,
            gradient_checkpointing=self.gradient_checkpointing,
            gradient_checkpointing_kwargs={"use_reentrant": False} if self.gradient_checkpointing else None,
            deepspeed=str(deepspeed_config(self.deepspeed)) if deepspeed_config(self.deepspeed) else None,
            save_strategy="steps",
            save_steps=self.save_steps,
            save_total_limit=self.save_total_limit,
            logging_steps=self.logging_steps,
            seed=self.seed,
            data_seed=self.seed,
            dataloader_num_workers=self.dataloader_workers,
            remove_unused_columns=False,  # the collator's batch is the model's input as is
            report_to=[],
            use_cpu=self.use_cpu,
            disable_tqdm=False,
        )


def last_complete_checkpoint(output_dir: str | Path) -> Path | None:
    """The newest checkpoint whose trainer state was written (Trainer writes it last): a kill mid-save leaves
    a directory without it, which is passed over for the one before."""
    root = Path(output_dir)
    if not root.is_dir():
        return None
    found = sorted((int(m.group(1)), p) for p in root.iterdir() if (m := CHECKPOINT.match(p.name)) and p.is_dir())
    for _, path in reversed(found):
        try:
            json.loads((path / "trainer_state.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        return path
    return None


class SftTrainer(Trainer):
    """Trainer whose batches come from ``SftCollator``; logs data order and skipped rows under ``output_dir``."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        # Qwen2.5-VL declares accepts_loss_kwargs = False, so Trainer would average per-micro-batch token means:
        # the step's loss would then depend on how rows fall into processes and accumulation steps. Its forward
        # does pass num_items_in_batch to the loss: the loss is the token mean over the whole global batch.
        self.model_accepts_loss_kwargs = True
        # One vision-tower call per forward whatever the micro-batch's modalities (vision.py): under ZeRO-3 a process
        # holding an image and a video would otherwise gather the tower's parameters twice, the others once.
        use_one_vision_call(self.model)
        self.order_log = Path(self.args.output_dir) / "data_order.jsonl"
        self.skip_log = Path(self.args.output_dir) / "skipped.jsonl"

    def log_skip(self, row: dict, reason: str) -> None:
        print(f"sft: skipping problem {row.get('problem_id')} ({row.get('path')}): {reason}")
        append_jsonl(
            self.skip_log,
            [
                {
                    "step": self.state.global_step,
                    "problem_id": row.get("problem_id"),
                    "path": row.get("path"),
                    "reason": reason,
                }
            ],
        )

    def train(self, resume_from_checkpoint: str | None = None, **kwargs):
        if self.args.should_save:  # marks where this process started, so the order log reads as runs
            step = int(CHECKPOINT.match(Path(resume_from_checkpoint).name).group(1)) if resume_from_checkpoint else 0
            append_jsonl(self.order_log, [{"start_step": step}])
        return super().train(resume_from_checkpoint=resume_from_checkpoint, **kwargs)

    def _load_from_checkpoint(self, resume_from_checkpoint: str, model=None) -> None:
        # transformers 5.23's Trainer reloads checkpoint weights with a plain load_state_dict, which skips the
        # key renaming from_pretrained applies to Qwen2.5-VL's saved layout: no weight loads, only a warning is
        # logged, and the "resumed" run trains on from the base weights. Load through from_pretrained instead.
        target = model if model is not None else self.model
        if self.is_fsdp_enabled or not isinstance(target, PreTrainedModel):
            return super()._load_from_checkpoint(resume_from_checkpoint, model)
        loaded = type(target).from_pretrained(resume_from_checkpoint, dtype=target.dtype, local_files_only=True)
        target.load_state_dict(loaded.state_dict(), strict=True)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        ids = inputs.pop("problem_ids")
        if self.args.should_save:
            append_jsonl(self.order_log, [{"step": self.state.global_step, "problem_ids": ids}])
        if inputs.pop("placeholder", False):  # every row skipped, several processes: a real forward, weight 0
            out = model(**{k: v for k, v in inputs.items() if k != "labels"})
            zero = out.logits.float().sum() * 0.0
            return (zero, out) if return_outputs else zero
        if not ids:  # every example of this micro-batch was skipped (no placeholder): contribute nothing, through a
            # real forward of one black image (every module, zero gradients for all). Summing the parameters instead
            # breaks ZeRO-3, whose parameters are empty shards outside a forward ("0 != 128 Cannot reduce scatter").
            out = model(**dummy_vision_inputs(self.accelerator.unwrap_model(model), self.args.device))
            zero = out.logits.float().sum() * 0.0
            return (zero, out) if return_outputs else zero
        return super().compute_loss(model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch)


def loss_curve(log_history: list[dict]) -> list[dict]:
    """Per logged step: step, epoch, loss, learning rate, grad norm (what the DVC plot shows)."""
    return [
        {
            "step": h["step"],
            "epoch": round(h.get("epoch", 0.0), 4),
            "loss": h["loss"],
            "learning_rate": h.get("learning_rate"),
            "grad_norm": h.get("grad_norm"),
        }
        for h in log_history
        if "loss" in h
    ]


def peak_memory_mb() -> float:
    if torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB
