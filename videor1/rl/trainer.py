"""The T-GRPO trainer: rollout -> scoring -> one policy update per step, with checkpoints and curves.

A compact loop of our own rather than TRL's GRPOTrainer (which, in TRL 1.16,
drops video tensors from its loss forward): every piece the paper changes is in
plain sight. One step takes ``prompts_per_step`` prompts in a seeded order,
samples each group (``rollout``), scores it (accuracy, format, length, and the
temporal comparison per group), turns rewards into group advantages, and takes
one optimizer step on ``policy_loss`` against the frozen reference model.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch
from transformers import get_scheduler

from ..distributed import (
    World,
    all_max,
    all_sum,
    barrier,
    check_device,
    full_tensors,
    gather_objects,
    load_sharded,
    reshard,
    save_sharded,
)
from ..generation import Completion, SamplingConfig, too_long
from ..io import append_jsonl, write_text
from ..media import MediaError, MediaRules, load_medium
from ..models.families import input_family
from ..prompts import user_message
from ..rewards import accuracy_rewards, format_rewards
from .algorithm import group_advantages, policy_loss, shape_rewards
from .config import RLConfig
from .policy import completion_logprobs
from .rollout import Group, distinct_completions, prompt_inputs, rollout

STEP_DIR = "step-{:06d}"


def data_order(n_rows: int, step: int, per_step: int, seed: int) -> list[int]:
    """Row indices for a step: consecutive slices of per-epoch permutations seeded by (seed, epoch), so a
    resumed run sees exactly the rows an uninterrupted one would."""
    out = []
    for position in range(step * per_step, (step + 1) * per_step):
        epoch, offset = divmod(position, n_rows)
        out.append(int(np.random.default_rng([seed, epoch]).permutation(n_rows)[offset]))
    return out


def group_rewards(groups: Sequence[Group], cfg: RLConfig) -> tuple[list[torch.Tensor], list[dict]]:
    """Total reward of each group's ordered completions, each group compared with its own shuffled group."""
    totals, parts = [], []
    for g in groups:
        solution, ptype = g.row["solution"], g.row["problem_type"]
        acc = torch.tensor(accuracy_rewards([c.text for c in g.ordered], solution, ptype))
        fmt = torch.tensor(format_rewards([c.text for c in g.ordered]))
        lengths = torch.tensor([len(c.token_ids) for c in g.ordered])
        shuffled = torch.tensor(accuracy_rewards([c.text for c in g.shuffled], solution, ptype)) if g.shuffled else None
        total, fired = shape_rewards(
            acc,
            fmt,
            lengths,
            shuffled,
            temporal=cfg.temporal,
            len_control=cfg.len_control,
            alpha=cfg.alpha,
            mu=cfg.mu,
            length_bonus=cfg.length_bonus,
            len_min=cfg.len_min,
            len_max=cfg.len_max,
        )
        totals.append(total)
        parts.append(
            {
                "accuracy": acc,
                "format": fmt,
                "lengths": lengths,
                "shuffled_accuracy": shuffled,
                "fired": fired,
                "video": g.row["data_type"] == "video",
            }
        )
    return totals, parts


def truncate_log(path: Path, keep: Callable[[dict], bool]) -> None:
    """Rewrite a JSONL log (atomically) with only the records ``keep`` accepts."""
    if path.exists():
        kept = [line for line in path.read_text().splitlines() if keep(json.loads(line))]
        write_text(path, "".join(line + "\n" for line in kept))


def _mean(values) -> float | None:
    values = list(values)
    return float(sum(values) / len(values)) if values else None


class RLTrainer:
    def __init__(
        self,
        model,
        ref_model,
        processor,
        backend,
        rows: Sequence[dict],
        rules: MediaRules,
        cfg: RLConfig,
        checkpoint_dir: str | Path,
        log: Callable[[str], None] = print,
        world: World | None = None,
    ):
        """``model`` and ``ref_model`` may be FSDP2-sharded over ``world`` (``videor1.distributed.shard_model``);
        then each rank samples and scores its share of a step's prompts, and ``backend`` holds its own full copy of
        the weights (vLLM, or transformers on an unsharded copy), synced after every update."""
        self.model, self.ref_model, self.processor, self.backend, self.world = (
            model,
            ref_model,
            processor,
            backend,
            world or World(),
        )
        check_device(self.world)  # after the engine: a worker that set another current device would show here
        self._placeholder: Group | None = None
        if cfg.gradient_checkpointing:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        self.rows, self.cfg, self.log = list(rows), cfg, log
        self.rules = input_family(processor).media_rules(rules)  # frames resized for the processor's patches
        self.dir = Path(checkpoint_dir)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.metrics_log = self.dir / "metrics.jsonl"
        self.skip_log = self.dir / "skipped.jsonl"
        self.samples_log = self.dir / "samples.jsonl"
        self.pad_id = processor.tokenizer.pad_token_id
        no_decay = [p for n, p in model.named_parameters() if p.requires_grad and (p.dim() < 2 or "norm" in n)]
        decay = [p for n, p in model.named_parameters() if p.requires_grad and not (p.dim() < 2 or "norm" in n)]
        self.optimizer = torch.optim.AdamW(
            [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}],
            lr=cfg.learning_rate,
        )
        self.scheduler = get_scheduler(
            cfg.lr_scheduler, self.optimizer, num_warmup_steps=cfg.warmup_steps, num_training_steps=cfg.steps
        )
        self.sampling = SamplingConfig(
            temperature=cfg.temperature,
            top_p=cfg.top_p,
            top_k=cfg.top_k,
            repetition_penalty=cfg.repetition_penalty,
            max_new_tokens=cfg.max_completion_length,
        )
        self.step = 0
        # the longest prompt to sample from: the run's limit, or less where the engine's context is shorter
        engine_limit = backend.prompt_limit(self.sampling) if backend is not None else cfg.max_prompt_length
        self.prompt_limit = min(cfg.max_prompt_length, engine_limit)

    # ----- checkpoints -------------------------------------------------------------------------

    def save(self) -> Path:
        """A sharded checkpoint of this step (every rank writes its part), then only the two newest are kept."""
        target = self.dir / STEP_DIR.format(self.step)
        save_sharded(
            self.model,
            self.optimizer,
            self.world,
            target,
            {"scheduler": self.scheduler.state_dict(), "step": self.step, "config": asdict(self.cfg)},
        )
        if self.world.is_main:
            for old in sorted(self.dir.glob("step-*"))[:-2]:
                shutil.rmtree(old, ignore_errors=True)
        barrier(self.world)
        return target

    def resume(self) -> int:
        """Load the newest complete checkpoint (renamed into place only when complete); 0 if none."""
        found = sorted(self.dir.glob("step-*"))
        if not found:
            return 0
        path = found[-1]
        state = load_sharded(self.model, self.optimizer, self.world, path)
        self.scheduler.load_state_dict(state["scheduler"])
        self.step = state["step"]
        if self.world.is_main:
            # every log forgets what the steps after this checkpoint wrote: they are redone, and would count twice
            truncate_log(self.metrics_log, lambda r: r["step"] <= self.step)  # step: steps done when logged
            truncate_log(self.samples_log, lambda r: r["step"] <= self.step)
            truncate_log(self.skip_log, lambda r: r["step"] < self.step)  # step: the step being run (from 0)
            self.log(f"rl: resuming from {path} (step {self.step})")
        barrier(self.world)  # no rank logs a new step before the logs are cut
        return self.step

    # ----- one step ----------------------------------------------------------------------------

    def _media(self, indices: list[int]) -> tuple[list[dict], list]:
        rows, media = [], []
        for i in indices:
            row = self.rows[i]
            try:
                medium = load_medium(Path(row["media_root"]) / row["path"], row["data_type"], self.rules)
                reason = too_long(self.processor, [user_message(row)], medium, self.prompt_limit)
            except (MediaError, ValueError) as err:
                reason = str(err)
            if reason:  # loud, logged, and never replaced by another row
                self.log(f"rl: skipping problem {row['problem_id']} at step {self.step}: {reason}")
                append_jsonl(self.skip_log, [{"step": self.step, "problem_id": row["problem_id"], "reason": reason}])
                continue
            rows.append(row)
            media.append(medium)
        return rows, media

    def compute(self):
        """Where forwards run in the compute dtype: bf16 autocast over fp32 master weights, or plain fp32. Pure bf16
        weights would not learn at the paper's lr: AdamW's ~1e-6 steps are below bf16's spacing (spec section 8)."""
        if self.cfg.compute_dtype == "float32":
            return contextlib.nullcontext()
        device = next(self.model.parameters()).device
        return torch.autocast(device_type=device.type, dtype=getattr(torch, self.cfg.compute_dtype))

    def placeholder(self) -> Group:
        """A group that contributes nothing: a rank with fewer groups than the others runs it (weight 0) so every
        rank makes the same FSDP collectives. Its one-token completion is the pad token on the first readable row."""
        if self._placeholder is None:
            for row in self.rows:
                try:
                    medium = load_medium(Path(row["media_root"]) / row["path"], row["data_type"], self.rules)
                except (MediaError, ValueError):
                    continue
                pad = Completion(text="", token_ids=[self.pad_id], finished=False)
                self._placeholder = Group(row, prompt_inputs(self.processor, row, medium), [pad], [], None)
                break
            else:
                raise RuntimeError("rl: no row of the data set can be read")
        return self._placeholder

    def update(self, groups: Sequence[Group], advantages: Sequence[torch.Tensor]) -> dict:
        """One optimizer step on ``policy_loss`` over the step's groups of every rank; then the rollout engine
        gets the weights. The loss is the mean over all ranks' groups, as one process holding them all computes it:
        FSDP averages gradients over ranks, so each rank weighs its groups by ranks / all groups."""
        cfg, world = self.cfg, self.world
        total = all_sum(world, len(groups))
        most = all_max(world, len(groups))  # once, before the loop: a collective per iteration would pair with
        work = [(g, a, 1.0) for g, a in zip(groups, advantages)]  # another rank's FSDP all-gathers and hang
        while len(work) < most:  # equal forwards on every rank
            filler = groups[0] if groups else self.placeholder()
            work.append((filler, torch.zeros(len(filler.ordered)), 0.0))
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        loss_sum, kl_sum = 0.0, 0.0
        for g, adv, weight in work:
            ids = [c.token_ids for c in g.ordered]
            prompt = g.prompt.to(next(self.model.parameters()).device)
            with self.compute():
                logp, mask = completion_logprobs(self.model, prompt, ids, self.pad_id)
                with torch.no_grad():
                    ref_logp, _ = completion_logprobs(self.ref_model, prompt, ids, self.pad_id)
                reshard(self.ref_model)  # no backward follows to free its root unit's gathered weights
            loss, kl = policy_loss(
                logp, ref_logp, adv.to(logp.device), mask, cfg.beta, aggregation=cfg.loss_aggregation
            )
            (loss * (weight * world.size / max(total, 1))).backward()  # one group at a time
            loss_sum += weight * loss.item()
            kl_sum += weight * kl.item()
        grad_norm = 0.0
        if total:
            norm = torch.nn.utils.clip_grad_norm_(self.model.parameters(), cfg.max_grad_norm)
            grad_norm = float(norm.full_tensor() if hasattr(norm, "full_tensor") else norm)  # sharded: a DTensor
        lr = self.scheduler.get_last_lr()[0]
        if total:
            self.optimizer.step()
            self.sync_rollout_weights()
        self.scheduler.step()
        return {
            "loss": all_sum(world, loss_sum) / total if total else None,
            "kl": all_sum(world, kl_sum) / total if total else None,
            "grad_norm": grad_norm,
            "learning_rate": lr,
        }

    def train_step(self) -> dict:
        cfg = self.cfg
        t0 = time.perf_counter()
        step_rows = data_order(len(self.rows), self.step, cfg.prompts_per_step, cfg.seed)
        rows, media = self._media(step_rows[self.world.rank :: self.world.size])  # this rank's share of the step
        self.model.eval()
        # outside the trainer's autocast: each engine samples in its own precision (vLLM's dtype, the sampler's weights)
        groups = (
            rollout(
                self.backend,
                self.processor,
                rows,
                media,
                num_generations=cfg.num_generations,
                temporal=cfg.temporal,
                sampling=self.sampling,
                seed=cfg.seed * 1_000_003 + self.step + self.world.rank * 1_000_000_007,
            )
            if rows
            else []
        )
        self.backend.offload()  # vLLM's sleep mode: its KV cache and weights leave the GPU while the policy trains
        t1 = time.perf_counter()
        totals, parts = group_rewards(groups, cfg)
        advantages = [group_advantages(t, cfg.num_generations) for t in totals]
        t2 = time.perf_counter()
        updated = self.update(groups, advantages)
        t3 = time.perf_counter()
        self.step += 1
        # every rank's groups count in the step's record (one entry per rank on one process)
        gathered = gather_objects(self.world, (totals, parts, [distinct_completions(g) for g in groups]))
        totals = [t for rank_totals, _, _ in gathered for t in rank_totals]
        parts = [p for _, rank_parts, _ in gathered for p in rank_parts]
        distinct = [d for _, _, rank_distinct in gathered for d in rank_distinct]
        video = [p for p in parts if p["video"]]
        record = {
            "step": self.step,
            "reward": _mean(float(t.mean()) for t in totals),
            "accuracy": _mean(float(p["accuracy"].mean()) for p in parts),
            "format": _mean(float(p["format"].mean()) for p in parts),
            "temporal_fired": _mean(float(p["fired"]) for p in video) if cfg.temporal else None,
            "shuffled_accuracy": _mean(
                float(p["shuffled_accuracy"].mean()) for p in video if p["shuffled_accuracy"] is not None
            ),
            "completion_length": _mean(float(p["lengths"].float().mean()) for p in parts),
            "distinct_completions": _mean(distinct),
            "kl": updated["kl"],
            "loss": updated["loss"],
            "all_correct": _mean(float(bool((p["accuracy"] > 0.1).all())) for p in parts),
            "all_wrong": _mean(float(bool((p["accuracy"] <= 0.1).all())) for p in parts),
            "grad_norm": updated["grad_norm"],
            "learning_rate": updated["learning_rate"],
            "groups": len(parts),
            "video_groups": len(video),
            "time_rollout_s": round(t1 - t0, 4),
            "time_scoring_s": round(t2 - t1, 4),
            "time_update_s": round(t3 - t2, 4),
        }
        if not self.world.is_main:  # rank 0 writes the step's logs
            return record
        append_jsonl(self.metrics_log, [record])
        if cfg.sample_dump_steps and self.step % cfg.sample_dump_steps == 0:
            for g, total in zip(groups[:2], totals[:2]):
                append_jsonl(
                    self.samples_log,
                    [
                        {
                            "step": self.step,
                            "problem_id": g.row["problem_id"],
                            "solution": g.row["solution"],
                            "ordered": [c.text for c in g.ordered[:2]],
                            "rewards": total[:2].tolist(),
                            "shuffled": [c.text for c in g.shuffled[:1]],
                            "permutation": g.permutation,
                        }
                    ],
                )
        return record

    def sync_rollout_weights(self) -> None:
        """A rollout engine with its own copy of the weights (vLLM; transformers on an unsharded copy) gets the
        policy's current ones, streamed from the shards a bucket at a time in the compute dtype."""
        if self.backend is not None and getattr(self.backend, "model", None) is not self.model:
            self.backend.sync_weights(
                full_tensors(
                    self.model,
                    self.world,
                    dtype=getattr(torch, self.cfg.compute_dtype),
                    bucket_bytes=self.cfg.sync_bucket_mb << 20,
                )
            )

    def train(self, on_step: Callable[[dict], None] | None = None) -> list[dict]:
        """Run to ``cfg.steps`` from the last checkpoint; returns every step's record (also on disk)."""
        if self.resume():
            self.sync_rollout_weights()  # the engine started from the SFT weights, the run from a later step
        while self.step < self.cfg.steps:
            record = self.train_step()
            if on_step:
                on_step(record)
            if self.step % self.cfg.save_steps == 0 or self.step == self.cfg.steps:
                self.save()
        return (
            [json.loads(line) for line in self.metrics_log.read_text().splitlines()]
            if self.metrics_log.exists()
            else []
        )
