"""Write the synthetic dataset: training rows, six evaluation files, media and ground-truth facts.

Layout under the output directory (the data root; row paths are relative to it):

    train.json              Video-R1-260k format, a JSON array
    eval_<benchmark>.json   the same format, one per benchmark of spec section 6
    facts.jsonl             per row: split, problem_id, data_source and the generator's facts
    videos/..., images/...  media
    train_broken.json       with ``broken_rows``: rows collect must quarantine (see broken.py),
    broken/...              and their media

Every row draws from its own random generator seeded by (seed, split, index),
so the output is byte-identical for a seed and one row does not shift another.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from ...io import atomic_path
from ...params.check import at_least, build, nearest, require
from .broken import write_broken
from .canvas import write_mp4, write_png
from .families import FAMILIES, IMAGE, ORDER_DEPENDENT, ORDER_INDEPENDENT, Example, SynthSpec

# Which families stand in for each real benchmark, mirroring what it measures.
BENCHMARKS: dict[str, list[str]] = {
    "mvbench": ["motion_direction", "event_order", "video_color"],
    "tempcompass": ["motion_direction", "event_order"],
    "videomme": ["motion_direction", "event_order", "video_color"],
    "videommmu": ["event_order", "video_color", "count_appearances"],
    "vsibench": ["video_size", "video_count", "event_order"],  # regression, numerical, appearance order
    "mmvu": ["motion_direction", "video_color"],
}


@dataclass(frozen=True)
class EvalSet:
    """One evaluation file: its families (rows cycle through them), its size, and geometry that differs from
    the training clips (``{"states": 8}``: clips twice as long, to ask whether more frames help)."""

    families: tuple[str, ...]
    rows: int | None = None  # None: SynthConfig.eval_rows_per_benchmark
    spec: dict = field(default_factory=dict)

    def __post_init__(self):
        require(bool(self.families), "families", "must name at least one family")
        for family in self.families:
            require(family in FAMILIES, "families", f"unknown family {family!r}; {nearest(family, FAMILIES)}")
        at_least(self, 1, "rows")
        build(SynthSpec, self.spec, "spec")  # the knobs it changes, checked as the training clips' are


@dataclass
class SynthConfig:
    seed: int = 0
    train_video_rows: int = 400
    train_image_rows: int = 400
    # the perception stream (issue 26): rows of the training families, from their own random stream, under the
    # training spec (its cue included), for a direct-answer pretraining before the CoT SFT; 0: none
    pretrain_video_rows: int = 0
    pretrain_image_rows: int = 0
    eval_rows_per_benchmark: int = 48
    broken_rows: bool = False  # also write train_broken.json, rows collect must quarantine
    spec: SynthSpec = field(default_factory=SynthSpec)
    # eval file name -> what it holds; None: the six benchmark stand-ins of BENCHMARKS
    eval_sets: dict[str, EvalSet] | None = None

    def __post_init__(self):
        at_least(self, 0, "train_video_rows", "train_image_rows", "pretrain_video_rows", "pretrain_image_rows")
        at_least(self, 1, "eval_rows_per_benchmark")

    def evals(self) -> dict[str, EvalSet]:
        if self.eval_sets is None:
            return {b: EvalSet(tuple(f)) for b, f in BENCHMARKS.items()}
        return {name: s if isinstance(s, EvalSet) else EvalSet(tuple(s["families"]), s.get("rows"), s.get("spec", {}))
                for name, s in self.eval_sets.items()}

    def spec_of(self, split: str) -> SynthSpec:
        evals = self.evals()
        name = split.removeprefix("eval_")
        if split.startswith("eval_") and name in evals:  # an eval set states its own cue: the training one never leaks
            return replace(self.spec, **{"cue": None, **evals[name].spec})
        return self.spec


def data_source(family: str) -> str:
    return f"synth-{'image' if family in IMAGE else 'video'}/{family}"


def _row(problem_id: int, family: str, ex: Example, rel_path: str) -> dict:
    return {
        "problem_id": problem_id,
        "problem": ex.problem,
        "data_type": ex.data_type,
        "problem_type": ex.problem_type,
        "options": ex.options,
        "solution": f"<answer>{ex.answer}</answer>",
        "path": rel_path,
        "data_source": data_source(family),
    }


def _make(root: Path, split: str, split_code: int, index: int, family: str, cfg: SynthConfig) -> tuple[dict, dict]:
    """One row and its facts; its media is written under ``root``."""
    rng = np.random.default_rng([cfg.seed, split_code, index])
    spec = cfg.spec_of(split)
    ex = FAMILIES[family](rng, spec)
    problem_id = index + 1
    if ex.data_type == "video":
        rel = f"videos/{split}/{family}/{problem_id:06d}.mp4"
        write_mp4(root / rel, ex.frames, spec.video_fps)
    else:
        rel = f"images/{split}/{family}/{problem_id:06d}.png"
        write_png(root / rel, ex.image)
    row = _row(problem_id, family, ex, "./" + rel)
    fact = {"split": split, "problem_id": problem_id, "data_source": row["data_source"], "answer": ex.answer,
            "facts": ex.facts}
    return row, fact


def _train_families(video_rows: int, image_rows: int) -> list[str]:
    """The family of each training row: half the video rows order-dependent, then the image rows."""
    dep, indep = list(ORDER_DEPENDENT), list(ORDER_INDEPENDENT)
    video = [dep[(i // 2) % len(dep)] if i % 2 == 0 else indep[(i // 2) % len(indep)] for i in range(video_rows)]
    image = [list(IMAGE)[i % len(IMAGE)] for i in range(image_rows)]
    return video + image


def splits(cfg: SynthConfig) -> dict[str, list[str]]:
    """Split name -> the family of each of its rows (the pretraining split last: the others' streams unchanged)."""
    out = {"train": _train_families(cfg.train_video_rows, cfg.train_image_rows)}
    for name, eval_set in cfg.evals().items():
        n = cfg.eval_rows_per_benchmark if eval_set.rows is None else eval_set.rows
        out[f"eval_{name}"] = [eval_set.families[i % len(eval_set.families)] for i in range(n)]
    if cfg.pretrain_video_rows or cfg.pretrain_image_rows:
        out["pretrain"] = _train_families(cfg.pretrain_video_rows, cfg.pretrain_image_rows)
    return out


def generate(out_dir: str | Path, cfg: SynthConfig) -> dict[str, dict[str, int]]:
    """Write the whole dataset to ``out_dir`` atomically; return row counts per split and source."""
    counts: dict[str, dict[str, int]] = {}
    with atomic_path(out_dir) as root:
        root.mkdir(parents=True)
        facts = []
        for code, (split, families) in enumerate(splits(cfg).items()):
            rows = []
            for index, family in enumerate(families):
                row, fact = _make(root, split, code, index, family, cfg)
                rows.append(row)
                facts.append(fact)
            counts[split] = dict(sorted(Counter(r["data_source"] for r in rows).items()))
            (root / f"{split}.json").write_text(json.dumps(rows, indent=1) + "\n", encoding="utf-8")
        with (root / "facts.jsonl").open("w", encoding="utf-8") as fh:
            for fact in facts:
                fh.write(json.dumps(fact, sort_keys=True) + "\n")
        if cfg.broken_rows:
            counts["train_broken"] = dict(sorted(Counter(r["data_source"] for r in write_broken(root)).items()))
    return counts
