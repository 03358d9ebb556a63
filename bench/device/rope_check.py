"""The M-RoPE positions a Qwen2.5-VL forward uses under ``videor1.models.rope``, as JSON: the same under every
transformers release this project meets (5.19 here, 5.17 on the lent GPU's image).

A tiny random model of the 7B's architecture (``bench/gpu_step.py``'s toy widths) with the reference rule
(``use_reference_positions``), on the CPU, float32. Cases, each recorded as the ``position_ids`` (3 × rows × length)
every call of the language model received (a forward hook), so what counts is what the model used, not only what
``reference_rope_index`` returns:

- ``get_rope_index``: the patched method called directly on a batch of two left-padded rows, one with an image
  and a video of 1.25 s per temporal patch, one with a video of 4.575 s per patch (non-whole seconds: where
  transformers 5.17's own rule, ``int(seconds)``, and 5.19's differ); its ``rope_deltas`` too;
- ``forward``: a plain forward of that batch (positions computed inside the model);
- ``completion_logprobs``: ``videor1.rl.policy``'s shared-prompt path (prefill + G completions on the cache) and
  its checkpointed path (G whole sequences), on one video prompt of ``gpu_step``'s shape;
- ``generate``: greedy decoding of 3 tokens from the batch (the cached decode steps' positions);
- ``native``: transformers' own ``get_rope_index`` (not the reference rule), for information only: it differs
  between releases, which is why the project replaces it.

    python -m bench.device.rope_check [--out FILE]       # JSON on stdout or in FILE

Exits 1 if the forward's positions are not ``reference_rope_index``'s (the patch did not take).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

import torch
import transformers
from transformers import Qwen2_5_VLConfig, Qwen2_5_VLForConditionalGeneration

from bench.gpu_step import completions, video_prompt
from bench.gpu_step import tiny_config as toy_widths
from videor1.models.rope import IMAGE, TEXT, VIDEO, reference_rope_index, use_reference_positions
from videor1.plan import CONFIGS
from videor1.rl.policy import completion_logprobs


def tiny_config() -> Qwen2_5_VLConfig:
    return Qwen2_5_VLConfig(**toy_widths(json.loads((CONFIGS / "qwen2_5_vl_7b.json").read_text())))


def batch(config: Qwen2_5_VLConfig) -> dict:
    """Two rows, left-padded: text, image (1 × 4 × 4 patches), text, video (4 × 4 × 6, 1.25 s a patch), text; and
    text, video (2 × 4 × 4, 4.575 s a patch), text."""
    g = torch.Generator().manual_seed(1)
    pad = config.text_config.pad_token_id or 0
    start, end = config.vision_start_token_id, config.vision_end_token_id

    def text(n):
        return [(TEXT, int(t)) for t in torch.randint(1000, 3000, (n,), generator=g)]

    def vision(kind, grid):
        token = config.image_token_id if kind == IMAGE else config.video_token_id
        return [(TEXT, start)] + [(kind, token)] * (int(torch.tensor(grid).prod()) // 4) + [(TEXT, end)]

    rows = [
        text(5) + vision(IMAGE, [1, 4, 4]) + text(3) + vision(VIDEO, [4, 4, 6]) + text(7),
        text(4) + vision(VIDEO, [2, 4, 4]) + text(6),
    ]
    length = max(len(r) for r in rows)
    ids = torch.full((2, length), pad)
    kinds = torch.zeros(2, length, dtype=torch.long)
    mask = torch.zeros(2, length, dtype=torch.long)
    for b, row in enumerate(rows):
        ids[b, length - len(row) :] = torch.tensor([t for _, t in row])
        kinds[b, length - len(row) :] = torch.tensor([k for k, _ in row])
        mask[b, length - len(row) :] = 1
    image_grid, video_grid = torch.tensor([[1, 4, 4]]), torch.tensor([[4, 4, 6], [2, 4, 4]])
    return {
        "input_ids": ids,
        "attention_mask": mask,
        "mm_token_type_ids": kinds,
        "pixel_values": torch.randn(int(image_grid.prod(-1).sum()), 3 * 2 * 14 * 14, generator=g),
        "image_grid_thw": image_grid,
        "pixel_values_videos": torch.randn(int(video_grid.prod(-1).sum()), 3 * 2 * 14 * 14, generator=g),
        "video_grid_thw": video_grid,
        "second_per_grid_ts": torch.tensor([1.25, 4.575]),
    }


class Recorder:
    """Every ``position_ids`` the language model is called with."""

    def __init__(self, model):
        self.calls: list[torch.Tensor] = []
        model.model.language_model.register_forward_pre_hook(self.hook, with_kwargs=True)

    def hook(self, module, args, kwargs):
        self.calls.append(kwargs["position_ids"].detach().clone())

    def take(self) -> list[torch.Tensor]:
        calls, self.calls = self.calls, []
        return calls


def case(tensors: list[torch.Tensor]) -> dict:
    data = [t.tolist() for t in tensors]
    return {
        "shapes": [list(t.shape) for t in tensors],
        "sha256": hashlib.sha256(json.dumps(data).encode()).hexdigest(),
        "positions": data,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="write the JSON here (default: stdout)")
    args = ap.parse_args(argv)

    config = tiny_config()
    torch.manual_seed(0)
    model = Qwen2_5_VLForConditionalGeneration._from_config(config, dtype=torch.float32).eval()
    native = type(model.model).get_rope_index
    use_reference_positions(model)
    recorder = Recorder(model)
    inputs = batch(config)
    index_args = {
        k: inputs[k]
        for k in (
            "input_ids",
            "mm_token_type_ids",
            "image_grid_thw",
            "video_grid_thw",
            "second_per_grid_ts",
            "attention_mask",
        )
    }
    cases, problems = {}, []
    with torch.no_grad():
        positions, deltas = model.model.get_rope_index(**index_args)
        cases["get_rope_index"] = {**case([positions]), "rope_deltas": deltas.tolist()}
        model(**inputs, use_cache=False)
        used = recorder.take()
        cases["forward"] = case(used)
        if not torch.equal(used[0], positions):
            problems.append("the forward's positions are not reference_rope_index's: the patch did not take")
        direct, _ = reference_rope_index(model.model, **index_args)
        if not torch.equal(direct, positions):
            problems.append("model.model.get_rope_index is not reference_rope_index")

        prompt = {
            k: v.float() if v.is_floating_point() else v
            for k, v in video_prompt(config, 4, 4 * 56 * 56, 32, "cpu", seed=0).items()
        }
        prompt["second_per_grid_ts"] = torch.tensor([1.25])
        rollouts = completions(4, 12, seed=0, vocab_size=config.text_config.vocab_size)
        completion_logprobs(model, prompt, rollouts, config.text_config.pad_token_id or 0)
        cases["completion_logprobs, shared prompt"] = case(recorder.take())
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    model.train()
    with torch.no_grad():
        completion_logprobs(model, prompt, rollouts, config.text_config.pad_token_id or 0)
        cases["completion_logprobs, checkpointed"] = case(recorder.take())
    model.gradient_checkpointing_disable()
    model.eval()
    with torch.no_grad():
        model.generate(
            **inputs,
            max_new_tokens=3,
            min_new_tokens=3,
            do_sample=False,
            pad_token_id=config.text_config.pad_token_id or 0,
        )
        cases["generate"] = case(recorder.take())
        native_positions, native_deltas = native(model.model, **index_args)
        cases["native"] = {**case([native_positions]), "rope_deltas": native_deltas.tolist()}
        cases["native"]["equals_reference"] = bool(torch.equal(native_positions, positions))

    record = {
        "transformers": transformers.__version__,
        "torch": torch.__version__,
        "problems": problems,
        "cases": cases,
    }
    text = json.dumps(record)
    if args.out:
        Path(args.out).write_text(text)
    else:
        print(text)
    summary = {name: c["sha256"][:12] for name, c in cases.items()}
    print(
        f"transformers {transformers.__version__}: {json.dumps(summary)}"
        + (f"; PROBLEMS: {problems}" if problems else ""),
        file=sys.stderr,
    )
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
