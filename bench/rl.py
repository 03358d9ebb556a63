"""Benchmark: one T-GRPO step on the tiny SFT model, ours against the public Video-R1 recipe's structure.

Both take the same prompts (video rows of ``data/collected.parquet``), sample G ordered + G/2 shuffled-frame
completions per prompt, score them with the same rewards and take one AdamW step on ``policy_loss`` against a
frozen reference, from identical weights (copies of ``models/sft``). They differ only in structure:

* ours   - ``RLTrainer.train_step`` as the ``rl`` stage runs it: ONE generate call for every group of the step,
           and per group the prompt (vision tower included) once, its cache shared by the G completions in one
           forward (``completion_logprobs``), for the policy and the reference;
* public - per prompt one generate call for the G ordered completions and another for the G/2 shuffled ones,
           the public trainer's inline reward shaping, and per completion ROW one forward (batch of 1, its vision
           inputs) with ``log_softmax`` over the full vocabulary at every position, for policy and reference.

Phases as ``train_step`` records them: rollout (media + sampling), scoring, update (log-probs, backward,
optimizer). Steps are interleaved (``bench.harness.interleave``); step k of either uses the same prompts and seeds.
Completion lengths differ (different sampling calls), so tokens and decoding steps are reported beside the times.
That both paths give the same log-probs, loss, gradients, rewards and advantages is a test:
``tests/test_rl_public_recipe.py``.

    python -m bench.rl [--steps 4] [--prompts 2] [--generations 8] [--max-completion-length 128]
"""

from __future__ import annotations

import copy
import statistics
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import torch
import transformers

from bench import harness
from videor1.generation import GenerationRequest, TransformersBackend
from videor1.media import MediaRules
from videor1.models import load_model, load_processor
from videor1.prompts import user_message
from videor1.rewards import accuracy_rewards, format_rewards
from videor1.rl import RLConfig, RLTrainer, data_order, policy_loss
from videor1.rl.rollout import Group, prompt_inputs, shuffle_frames

PHASES = ("rollout", "scoring", "update")


class CountingBackend:
    """A backend that counts its generate calls, sequences, tokens and decoding steps (per call, its longest
    completion); everything else is the wrapped backend's."""

    def __init__(self, inner):
        self.inner, self.counts = inner, dict.fromkeys(("generate_calls", "sequences", "tokens", "decode_steps"), 0)

    def __getattr__(self, name):
        return getattr(self.inner, name)

    def generate(self, requests, sampling):
        out = self.inner.generate(requests, sampling)
        lengths = [len(c.token_ids) for completions in out for c in completions]
        for key, n in zip(self.counts, (1, len(lengths), sum(lengths), max(lengths, default=0))):
            self.counts[key] += n
        return out

    def take(self) -> dict:
        counts, self.counts = self.counts, dict.fromkeys(self.counts, 0)
        return counts


def public_rollout(tr: RLTrainer, backend, rows, media, seed: int) -> list[Group]:
    """Per prompt: one generate call for the G ordered completions, then a separate one for the G/2 shuffled."""
    cfg, generator, groups = tr.cfg, torch.Generator().manual_seed(seed), []
    for j, (row, medium) in enumerate(zip(rows, media)):
        messages, n = [user_message(row)], cfg.num_generations
        ordered = backend.generate([GenerationRequest(messages, medium)], replace(tr.sampling, n=n, seed=seed + 2 * j))
        shuffled, perm = [[]], None
        if cfg.temporal and medium.data_type == "video" and medium.num_frames > 1:
            shuffled_medium, perm = shuffle_frames(medium, generator)
            sampling = replace(tr.sampling, n=n // 2, seed=seed + 2 * j + 1)
            shuffled = backend.generate([GenerationRequest(messages, shuffled_medium)], sampling)
        groups.append(Group(row, prompt_inputs(tr.processor, row, medium), ordered[0], shuffled[0], perm))
    return groups


def public_rewards(groups: list[Group], cfg: RLConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Rewards and advantages as the public trainer writes them: a rewards-per-function table, the temporal and
    length bonuses added to its accuracy column, the columns summed, then (r - mean) / (std + 1e-4) per group."""
    totals = []
    for g in groups:
        texts, solution, ptype = [c.text for c in g.ordered], g.row["solution"], g.row["problem_type"]
        per_func = torch.tensor(
            [accuracy_rewards(texts, solution, ptype), format_rewards(texts)], dtype=torch.float32
        ).T
        if cfg.temporal and g.shuffled:
            shuffled_acc = torch.tensor(accuracy_rewards([c.text for c in g.shuffled], solution, ptype))
            if per_func[:, 0].mean() >= cfg.mu * shuffled_acc.float().mean():
                correct = per_func[:, 0] > 0.1
                per_func[correct, 0] += cfg.alpha
        if cfg.len_control:
            selected = torch.nonzero(per_func[:, 0] > 0.1, as_tuple=True)[0].tolist()
            for idx in selected if len(selected) > 1 else []:
                if cfg.len_min <= len(g.ordered[idx].token_ids) <= cfg.len_max:
                    per_func[idx, 0] += cfg.length_bonus
        totals.append(per_func.sum(dim=1))
    rewards = torch.cat(totals) if totals else torch.zeros(0)
    grouped = rewards.view(-1, cfg.num_generations)
    mean = grouped.mean(dim=1).repeat_interleave(cfg.num_generations)
    std = grouped.std(dim=1).repeat_interleave(cfg.num_generations)
    return rewards, (rewards - mean) / (std + 1e-4)


def public_row_logprobs(model, prompt, completion: list[int]) -> torch.Tensor:
    """One completion row, batch of 1 with its vision inputs: log_softmax over the full vocabulary at every position
    of prompt + completion, gathered at the next tokens, the completion's part kept."""
    ids = torch.tensor([completion], dtype=torch.long, device=prompt["input_ids"].device)
    inputs = dict(prompt)
    inputs["input_ids"] = torch.cat([prompt["input_ids"], ids], dim=1)
    inputs["attention_mask"] = torch.cat([prompt["attention_mask"], torch.ones_like(ids)], dim=1)
    if "mm_token_type_ids" in inputs:
        inputs["mm_token_type_ids"] = torch.cat([prompt["mm_token_type_ids"], torch.zeros_like(ids)], dim=1)
    logits = model(**inputs).logits[:, :-1].float()
    logp = logits.log_softmax(dim=-1).gather(-1, inputs["input_ids"][:, 1:].unsqueeze(-1)).squeeze(-1)
    return logp[0, logp.shape[1] - len(completion) :]


def public_group_logprobs(model, prompt, completions: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-row log-probs right-padded to the longest completion, and the mask."""
    length = max(1, max(len(c) for c in completions))
    pad = lambda t: torch.nn.functional.pad(t, (0, length - t.shape[0]))  # noqa: E731
    logp = torch.stack([pad(public_row_logprobs(model, prompt, c)) for c in completions])
    mask = torch.stack([pad(torch.ones(len(c), dtype=torch.long)) for c in completions]).to(logp.device)
    return logp, mask


def public_step(tr: RLTrainer, backend) -> dict:
    """One step in the public structure, its phases timed as ``train_step`` times them."""
    cfg, t0 = tr.cfg, time.perf_counter()
    rows, media = tr._media(data_order(len(tr.rows), tr.step, cfg.prompts_per_step, cfg.seed))
    tr.model.eval()
    groups = public_rollout(tr, backend, rows, media, seed=cfg.seed * 1_000_003 + tr.step)
    t1 = time.perf_counter()
    _, advantages = public_rewards(groups, cfg)
    t2 = time.perf_counter()
    tr.model.train()
    tr.optimizer.zero_grad(set_to_none=True)
    for k, g in enumerate(groups):
        ids = [c.token_ids for c in g.ordered]
        logp, mask = public_group_logprobs(tr.model, g.prompt, ids)
        with torch.no_grad():
            ref_logp, _ = public_group_logprobs(tr.ref_model, g.prompt, ids)
        adv = advantages[k * cfg.num_generations : (k + 1) * cfg.num_generations]
        loss, _ = policy_loss(logp, ref_logp, adv, mask, cfg.beta, aggregation=cfg.loss_aggregation)
        (loss / len(groups)).backward()
    torch.nn.utils.clip_grad_norm_(tr.model.parameters(), cfg.max_grad_norm)
    tr.optimizer.step()
    tr.scheduler.step()
    tr.step += 1
    return {"time_rollout_s": t1 - t0, "time_scoring_s": t2 - t1, "time_update_s": time.perf_counter() - t2}


def main() -> None:
    ap = harness.arguments(__doc__)
    ap.add_argument("--steps", type=int, default=4, help="timed steps per implementation (after one warm-up)")
    ap.add_argument("--prompts", type=int, default=2, help="video prompts per step")
    ap.add_argument("--generations", type=int, default=8, help="G ordered completions per prompt (G/2 shuffled)")
    ap.add_argument("--max-completion-length", type=int, default=128)
    args = ap.parse_args()
    torch.set_num_threads(1)
    root, p = harness.project("sft"), harness.params()["rl"]
    rows = pl.read_parquet(root / "data" / "collected.parquet").filter(pl.col("data_type") == "video").to_dicts()
    rows = [{**r, "media_root": str(root / r["media_root"])} for r in rows]
    overrides = dict(prompts_per_step=args.prompts, num_generations=args.generations, steps=args.steps + 1)
    overrides |= dict(max_completion_length=args.max_completion_length, temperature=1.0, top_p=1.0, temporal=True)
    cfg = RLConfig(**{**p["train"], **overrides, "sample_dump_steps": 0, "save_steps": 10**9})
    processor, base = load_processor(root / "models" / "sft"), load_model(root / "models" / "sft")
    per_step = cfg.prompts_per_step * (cfg.num_generations + cfg.num_generations // 2)
    trainers, backends = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in ("ours", "public"):
            model, ref = copy.deepcopy(base), copy.deepcopy(base).eval().requires_grad_(False)
            batch = per_step if name == "ours" else cfg.num_generations  # ours: the stage's one call per step
            backends[name] = CountingBackend(TransformersBackend(model, processor, batch_size=batch))
            trainers[name] = RLTrainer(
                model, ref, processor, backends[name], rows, MediaRules(**p["media"]), cfg, Path(tmp) / name, log=print
            )

        def step(name: str) -> dict:
            tr = trainers[name]
            rec = tr.train_step() if name == "ours" else public_step(tr, backends[name])
            return {**{ph: rec[f"time_{ph}_s"] for ph in PHASES}, **backends[name].take()}

        timings = harness.interleave({name: lambda name=name: step(name) for name in trainers}, args.steps)

    def median(name: str, key: str) -> float:
        return statistics.median(r[key] for r in timings[name].results)

    rows_md = [
        {
            "per step": key,
            **{name: median(name, key) for name in timings},
            "public / ours": f"{median('public', key) / max(median('ours', key), 1e-9):.2f}x",
        }
        for key in (*PHASES, "generate_calls", "sequences", "tokens", "decode_steps")
    ]
    total = harness.speedups(timings, "public")["ours"]
    rows_md.append(
        {"per step": "**total s**", **{n: t.median for n, t in timings.items()}, "public / ours": f"**{total:.2f}x**"}
    )
    record = {
        "config": {**vars(args), "media": p["media"], "video_rows": len(rows), "model": "models/sft"},
        "vocab_size": base.config.text_config.vocab_size,
        "timings": {name: {**t.summary(), "steps": t.results} for name, t in timings.items()},
        "speedup_median_total": total,
    }
    md = [
        "# One T-GRPO step: ours against the public recipe's structure (tiny SFT model, CPU)",
        "",
        f"{args.prompts} video prompts per step, G = {args.generations} ordered + {args.generations // 2} shuffled "
        f"completions each, up to {args.max_completion_length} tokens, temperature 1.0; one warm-up step, then "
        f"{args.steps} steps each, interleaved; medians. Same log-probs, loss, gradients and rewards: "
        "tests/test_rl_public_recipe.py.",
        "",
        *harness.table(rows_md),
        "",
        f"The tiny model's vocabulary is {record['vocab_size']:,} tokens, so the public path's full-vocabulary "
        "log-softmax is cheap here; at Qwen's 152k it costs far more time and memory (bench.logprobs).",
    ]
    print(harness.write("rl", record, md, args.out, transformers=transformers.__version__))


if __name__ == "__main__":
    main()
