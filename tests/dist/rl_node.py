"""The RL stage's node path on CPU: colocated vLLM engines (external launcher), ranks that skip unevenly.

    torchrun --nproc_per_node=N tests/dist/rl_node.py MODEL_DIR SYNTH_DIR WORK_DIR OUT.pt

As ``tasks.rl`` builds it: policy and reference sharded as they load, then one vLLM engine per rank built with
``colocated=True``. The rows are hostile: one row's video is unreadable and prompts over 320 tokens are skipped
(a third of them), so ranks keep different numbers of groups in a step. Three T-GRPO steps, the engine synced
(streamed) after each; then on every rank: the weight sync's peak tensor memory streamed and as one full gather,
and vLLM's log-probs of a fresh sample against the trained policy's. Rank 0 saves everything for
tests/test_node.py.
"""

from __future__ import annotations

import gc
import json
import sys
import weakref
from pathlib import Path

import torch

import videor1  # noqa: F401
from videor1.distributed import full_state_dict, full_tensors, gather_objects, init_world, load_sharded_models
from videor1.generation import GenerationRequest, TransformersBackend, chat_text
from videor1.media import MediaRules, load_medium
from videor1.models import load_model, load_processor
from videor1.prompts import user_message
from videor1.rl import RLConfig, RLTrainer, completion_logprobs
from videor1.rl.rollout import prompt_inputs
from videor1.rl.trainer import data_order

RULES = MediaRules(max_frames=8, video_min_pixels=3136, video_max_pixels=3136, image_min_pixels=3136, image_max_pixels=7056)


class LiveTensors:
    """Wraps a stream of (name, tensor) and tracks the bytes of the handed-out tensors still alive (held by the
    producer's bucket or by the consumer), and their peak: how much of the model is full at once."""

    def __init__(self, stream):
        self.stream, self.current, self.peak = stream, 0, 0

    def _free(self, nbytes: int) -> None:
        self.current -= nbytes

    def __iter__(self):
        for name, tensor in self.stream:
            self.current += tensor.nbytes
            self.peak = max(self.peak, self.current)
            weakref.finalize(tensor, self._free, tensor.nbytes)
            yield name, tensor
            del tensor


def sync_peak(engine, model, world, **stream) -> int:
    """Peak bytes of full tensors alive at once during one weight sync into ``engine``: streamed with
    ``stream``'s bucket, or from one full gather."""
    live = LiveTensors(full_tensors(model, world, **stream) if stream else iter(full_state_dict(model, world).items()))
    engine.sync_weights(live)
    gc.collect()
    return live.peak


def vllm_against_policy(engine, model, processor, row, medium) -> float:
    """Largest |vLLM's sampled log-prob − the policy's| over one temperature-1 sample."""
    from vllm import SamplingParams

    from videor1.generation.vllm_engine import multi_modal_data

    request = GenerationRequest([user_message(row)], medium)
    prompt = {"prompt": chat_text(processor, request.messages, add_generation_prompt=True),
              "multi_modal_data": multi_modal_data(processor, medium)}
    [out] = engine.llm.generate([prompt], SamplingParams(temperature=1.0, max_tokens=12, seed=0, logprobs=0), use_tqdm=False)
    sample = out.outputs[0]
    theirs = torch.tensor([lp[t].logprob for lp, t in zip(sample.logprobs, sample.token_ids)])
    with torch.no_grad():
        ours, _ = completion_logprobs(model, prompt_inputs(processor, row, medium), [list(sample.token_ids)],
                                      processor.tokenizer.pad_token_id)
    return float((ours[0] - theirs).abs().max())


def main(model_dir: str, synth: str, work: str, out: str) -> None:
    torch.set_num_threads(1)
    world = init_world()
    from videor1.generation.vllm_engine import VLLMBackend

    processor = load_processor(model_dir)
    model, ref = load_sharded_models(model_dir, world, (torch.float32, torch.float32))
    ref.requires_grad_(False)
    engine = VLLMBackend(model_dir, max_model_len=2048, dtype="float32", max_num_seqs=16, colocated=True)
    from vllm.distributed.parallel_state import get_tp_group, get_world_group

    rows = [{**r, "media_root": synth} for r in json.loads((Path(synth) / "train.json").read_text())]
    cfg = RLConfig(steps=3, prompts_per_step=4, num_generations=4, max_completion_length=12, max_prompt_length=320,
                   len_min=4, len_max=12, learning_rate=1e-3, save_steps=10, sync_bucket_mb=0, seed=0)
    first = data_order(len(rows), 0, cfg.prompts_per_step, cfg.seed)[0]  # rank 0's first row of step 0
    rows[first] = {**rows[first], "data_type": "video", "path": "missing/clip.mp4"}  # unreadable: skipped, logged
    trainer = RLTrainer(model, ref, processor, engine, rows, RULES, cfg, Path(work) / "checkpoints", log=lambda _: None,
                        world=world)
    kept = []
    media = trainer._media

    def counting(indices):
        found = media(indices)
        kept.append(len(found[0]))
        return found

    trainer._media = counting
    records = trainer.train()

    row = next(r for r in rows[world.rank:] if r["data_type"] == "video" and r["path"] != "missing/clip.mp4")
    medium = load_medium(Path(synth) / row["path"], "video", RULES)
    sink = TransformersBackend(load_model(model_dir), processor)
    measured = {
        "rank": world.rank,
        "engine_executor": engine.engine_args.get("distributed_executor_backend"),
        "vllm_world": get_world_group().world_size, "vllm_tp": get_tp_group().world_size,
        "kept_per_step": kept,
        "logprob_gap_after_training": vllm_against_policy(engine, model, processor, row, medium),
        # into vLLM: its in-place reload materialises and re-packs a layer at a time, on top of what we hand it
        "sync_peak_full_gather": sync_peak(engine, model, world),
        "sync_peak_streamed": sync_peak(engine, model, world, dtype=torch.float32, bucket_bytes=0),
        # into a transformers copy, which only copies: what the gather itself holds
        "gather_peak_full": sync_peak(sink, model, world),
        "gather_peak_streamed": sync_peak(sink, model, world, dtype=torch.float32, bucket_bytes=0),
        "weights_bytes": sum(t.numel() * 4 for _, t in full_tensors(model, world)),
        "largest_tensor_bytes": max(t.numel() * 4 for _, t in full_tensors(model, world)),
    }
    measured["logprob_gap_after_streamed_sync"] = vllm_against_policy(engine, model, processor, row, medium)
    ranks = gather_objects(world, measured)
    if world.is_main:
        skipped = [json.loads(line) for line in trainer.skip_log.read_text().splitlines()]
        torch.save({"world": world.size, "records": records, "ranks": ranks, "skipped": skipped}, out)


if __name__ == "__main__":
    main(*sys.argv[1:])
