"""Benchmark: the CoT filter (videor1.cot.apply_filter) and the filter stage's I/O on a Video-R1-260k-sized table.

It builds 263,071 CoT rows in memory with Video-R1-260k's problem-type mix
(multiple choice 168,769; free-form 38,722; numerical 34,354; OCR 15,886;
regression 5,340; 116,248 video rows), each with a teacher completion written
from a fixed seed: a ``<think>`` rationale of 40-150 words (the scripted
teacher's openers, checks and closers around generated observations), then
``<answer>…</answer>`` - correct, or close for free-form / regression rows - and
spoiled in the shares of the tiny profile's scripted teacher (params.yaml
``tiny.cot.scripted.spoil``: wrong answer, malformed tags, truncated, looping,
too short, bad option letter, non-numeric). Rows carry every column of the cot
stage's table (``COT_SCHEMA``). Then, in the same run, it times:

* baseline - the accuracy rule alone, what the public code filters on
             (``FilterConfig(min_words=None, max_words=None,
             max_repeated_ngram_share=None, check_format=False,
             check_option_letter=False, check_numeric=False)``);
* default  - every rule, ``FilterConfig()`` (the tiny profile's setting);
* paper    - the paper profile's setting (params.yaml ``paper.filter``:
             accuracy, format, option letter, numeric; no length or repetition);

each ``--repeats`` times, interleaved, after a warm-up on a few thousand rows.
Then, once each: every rule's predicate alone over all rows (the accuracy rule
also per problem type: ROUGE for free-form, WER for OCR), and the stage's
steps around the filter (``tasks/filter.py``): ``pl.read_parquet`` of the table
plus ``to_dicts()``, building the kept rows' DataFrame, ``COT_FILTERED_SCHEMA``
validation and ``write_parquet``. Results go to ``bench/results/filter.json``
and ``filter.md``.

Run from the repository root:

    python bench/bench_filter.py [--rows 263071] [--repeats 2] [--seed 0]
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from collections import Counter
from dataclasses import asdict
from importlib import metadata
from pathlib import Path

import pandera
import polars as pl
import yaml

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from _env import code_version  # noqa: E402  (bench/ is on sys.path)
from _env import machine_info as common_machine_info

from videor1.cot import FilterConfig, apply_filter, rules, think_text  # noqa: E402
from videor1.cot.scripted import CHECKS, CLOSERS, NUMBER_WORDS, OPENERS, SPOILS  # noqa: E402
from videor1.data.schema import COT_FILTERED_SCHEMA, COT_SCHEMA  # noqa: E402

RESULTS = REPO / "bench" / "results"
PARAMS = REPO / "params.yaml"
TYPE_COUNTS = {"multiple choice": 168_769, "free-form": 38_722, "numerical": 34_354, "OCR": 15_886, "regression": 5_340}
VIDEO_ROWS = 116_248  # Video-R1-260k
WARMUP_ROWS = 4_000
# Rough Video-R1-260k sources per problem type and medium (names only label rows; nothing depends on them).
SOURCES = {
    ("multiple choice", "video"): ["LLaVA-Video-178K", "NeXT-QA", "PerceptionTest", "STAR", "CLEVRER"],
    ("multiple choice", "image"): ["ScienceQA", "AI2D", "A-OKVQA", "MMK12"],
    ("free-form", "video"): ["LLaVA-Video-178K", "ActivityNet-QA"],
    ("free-form", "image"): ["LLaVA-CoT", "ShareGPT4V"],
    ("numerical", "video"): ["CLEVRER", "STAR"],
    ("numerical", "image"): ["CLEVR-Math", "ChartQA", "GeoQA"],
    ("OCR", "video"): ["TextVR"],
    ("OCR", "image"): ["TextVQA", "DocVQA"],
    ("regression", "video"): ["SpatialVideo"],
    ("regression", "image"): ["SpatialImage"],
}

COLORS = ["red", "blue", "green", "yellow", "white", "black", "orange", "purple", "brown", "gray"]
OBJECTS = [
    "cup",
    "ball",
    "box",
    "chair",
    "car",
    "dog",
    "book",
    "bottle",
    "door",
    "table",
    "lamp",
    "bag",
    "phone",
    "bicycle",
    "plate",
    "window",
    "shelf",
    "hat",
    "bench",
    "sign",
]
PEOPLE = ["the man", "the woman", "the child", "the person", "the chef", "the player", "the driver", "the student"]
VERBS = [
    "picks up",
    "puts down",
    "opens",
    "closes",
    "pushes",
    "pulls",
    "moves",
    "holds",
    "throws",
    "points at",
    "walks toward",
    "looks at",
]
PLACES = ["table", "floor", "counter", "street", "shelf", "kitchen", "field", "desk", "stage", "room"]
SIDES = ["left", "right", "top", "bottom", "center"]
OCR_WORDS = [
    "SALE",
    "OPEN",
    "EXIT",
    "Coffee",
    "Bakery",
    "STOP",
    "Main",
    "Street",
    "Welcome",
    "Hotel",
    "No",
    "Parking",
    "Fresh",
    "Bread",
    "Daily",
    "Menu",
    "Station",
    "Museum",
    "Park",
    "Library",
    "2024",
    "50%",
    "OFF",
]
OBSERVATIONS = [
    "In the first frames the {color} {obj} is on the {side} side.",
    "At about {t} seconds, {who} {verb} the {color} {obj}.",
    "Later, {who} {verb} the {obj} near the {place}.",
    "I count {n} {obj}s in this part of the scene.",
    "The {obj} on the {place} looks {color} under this light.",
    "By the end, the {color} {obj} has moved to the {side} of the frame.",
    "Nothing else in the {place} seems to change between these frames.",
    "The camera stays still while {who} {verb} the {obj}.",
    "There is also a {color} {obj} in the background, but it does not move.",
    "Comparing the frames around {t} seconds, the {obj} is clearly closer to the {place}.",
    "The question asks about the {obj}, so the other objects matter less.",
    "Hmm, the {color} {obj} could be confused with the {obj2}, but its shape is different.",
]


def spoil_shares() -> dict[str, float]:
    return {k: float(v) for k, v in yaml.safe_load(PARAMS.read_text())["tiny"]["cot"]["scripted"]["spoil"].items()}


def paper_filter() -> tuple[FilterConfig, int]:
    p = yaml.safe_load(PARAMS.read_text())["paper"]["filter"]
    return FilterConfig(**{k: v for k, v in p.items() if k != "examples"}), p.get("examples", 3)


BASELINE = FilterConfig(
    min_words=None,
    max_words=None,
    max_repeated_ngram_share=None,
    check_format=False,
    check_option_letter=False,
    check_numeric=False,
)


class RowMaker:
    """Writes one synthetic CoT row at a time from a seeded ``random.Random``."""

    def __init__(self, seed: int, spoil: dict[str, float]):
        self.rng = random.Random(seed)
        self.spoil = spoil

    def pick(self, seq):
        return seq[self.rng.randrange(len(seq))]

    def sentence(self) -> str:
        r = self.rng
        return self.pick(OBSERVATIONS).format(
            color=self.pick(COLORS),
            obj=self.pick(OBJECTS),
            obj2=self.pick(OBJECTS),
            side=self.pick(SIDES),
            who=self.pick(PEOPLE),
            verb=self.pick(VERBS),
            place=self.pick(PLACES),
            t=r.randint(1, 60),
            n=r.randint(2, 9),
        )

    def free_text(self) -> str:
        return (
            f"{self.pick(PEOPLE).capitalize()} {self.pick(VERBS)} the {self.pick(COLORS)} {self.pick(OBJECTS)} "
            f"on the {self.pick(PLACES)}"
            + (f" and then {self.pick(VERBS)} the {self.pick(OBJECTS)}" if self.rng.random() < 0.6 else "")
            + "."
        )

    def paraphrase(self, text: str) -> str:
        """The reference with one or two words changed: what a good teacher's free-form answer looks like."""
        words = text.rstrip(".").split()
        for _ in range(self.rng.randint(1, 2)):
            words[self.rng.randrange(len(words))] = self.pick(OBJECTS + COLORS)
        return " ".join(words) + "."

    def problem(self, ptype: str) -> tuple[str, list[str], str, str]:
        """Question, options, ground-truth answer and the teacher's correct answer."""
        r = self.rng
        if ptype == "multiple choice":
            k = self.pick([2, 3, 4, 4, 4, 5, 6])
            options = [f"{'ABCDEF'[i]}. the {self.pick(COLORS)} {self.pick(OBJECTS)}" for i in range(k)]
            answer = "ABCDEF"[r.randrange(k)]
            return f"Which object does {self.pick(PEOPLE)} {self.pick(VERBS)} first?", options, answer, answer
        if ptype == "numerical":
            answer = str(r.randint(0, 20)) if r.random() < 0.8 else f"{r.randint(0, 50) / 2:.1f}"
            return f"How many {self.pick(OBJECTS)}s are on the {self.pick(PLACES)}?", [], answer, answer
        if ptype == "regression":
            value = round(r.uniform(0.5, 30.0), 1)
            said = f"{value * r.uniform(0.85, 1.15):.1f}"
            return f"How far, in meters, is the {self.pick(OBJECTS)} from the camera?", [], f"{value}", said
        if ptype == "OCR":
            answer = " ".join(self.pick(OCR_WORDS) for _ in range(r.randint(1, 5)))
            return "What text is written on the sign?", [], answer, answer
        answer = self.free_text()
        return f"What does {self.pick(PEOPLE)} do in the {self.pick(PLACES)}?", [], answer, self.paraphrase(answer)

    def wrong(self, ptype: str, options: list[str], answer: str) -> str:
        if ptype == "multiple choice":
            return self.pick([o[0] for o in options if o[0] != answer])
        if ptype == "numerical":
            return str(int(float(answer)) + self.pick([-1, 1]))
        if ptype == "regression":
            return f"{float(answer) * 1.8 + 3:.1f}"
        if ptype == "OCR":
            return " ".join(reversed(answer.split())) + " Q"
        return self.free_text()

    def pick_spoil(self, ptype: str) -> str | None:
        u, edge = self.rng.random(), 0.0
        for name in SPOILS:
            edge += self.spoil.get(name, 0.0)
            if u < edge:
                applies = {
                    "bad_option": ptype == "multiple choice",
                    "non_numeric": ptype in ("numerical", "regression"),
                }.get(name, True)
                return name if applies else None
        return None

    def completion(self, ptype: str, options: list[str], answer: str, said: str) -> tuple[str, str | None]:
        r = self.rng
        spoil = self.pick_spoil(ptype)
        if spoil == "wrong_answer":
            said = self.wrong(ptype, options, answer)
        elif spoil == "bad_option":
            said = "ABCDEFGH"[len(options)]
        elif spoil == "non_numeric":
            value = float(answer)
            said = f"about {NUMBER_WORDS[int(value)] if value.is_integer() and 0 <= value <= 10 else 'a few'}"
        target = r.randint(40, 140)
        closer = self.pick(CLOSERS).format(answer=said)
        steps = [self.pick(OPENERS)]
        words = len(steps[0].split()) + len(closer.split())
        while words < target:
            s = self.sentence() if r.random() < 0.85 else self.pick(CHECKS)
            steps.append(s)
            words += len(s.split())
        steps.append(closer)
        if spoil == "looping":
            steps = steps[:2] + [steps[1]] * r.randint(8, 14) + steps[-1:]
        elif spoil == "too_short":
            steps = [f"It is {said}."]
        think = " ".join(steps)
        text = f"<think>{think}</think>\n<answer>{said}</answer>"
        if spoil == "malformed_tags":
            text = self.pick(
                [
                    f"<think>{think}\n<answer>{said}</answer>",
                    f"{think}\n<answer>{said}</answer>",
                    f"<think>{think}</think>\n<answer>{said}</answer>\n<answer>{said}</answer>",
                    f"<answer>{said}</answer>\n<think>{think}</think>",
                ]
            )
        elif spoil == "truncated":
            text = text[: max(12, int(len(text) * r.uniform(0.3, 0.8)))]
        return text, spoil

    def row(self, problem_id: int, ptype: str, data_type: str) -> dict:
        r = self.rng
        question, options, answer, said = self.problem(ptype)
        completion, spoil = self.completion(ptype, options, answer, said)
        source = self.pick(SOURCES[(ptype, data_type)])
        video = data_type == "video"
        height, width = self.pick([(360, 640), (480, 640), (720, 1280), (448, 448), (1024, 768)])
        return {
            "problem_id": problem_id,
            "problem": question,
            "data_type": data_type,
            "problem_type": ptype,
            "options": options,
            "solution": f"<answer>{answer}</answer>",
            "path": f"./{source}/{problem_id:06d}.{'mp4' if video else 'jpg'}",
            "data_source": source,
            "media_root": "/data/Video-R1-data",
            "num_frames": r.randint(60, 1800) if video else None,
            "video_fps": self.pick([24.0, 25.0, 30.0]) if video else None,
            "height": height,
            "width": width,
            "completion": completion,
            "teacher_spoil": spoil,
            "completion_tokens": int(len(completion.split()) * 1.3),
        }


def make_rows(n: int, seed: int, spoil: dict[str, float]) -> list[dict]:
    """``n`` rows in Video-R1-260k's type mix (scaled when n differs), shuffled; video share as in the data set."""
    total = sum(TYPE_COUNTS.values())
    counts = {t: round(c * n / total) for t, c in TYPE_COUNTS.items()}
    counts["multiple choice"] += n - sum(counts.values())
    types = [t for t, c in counts.items() for _ in range(c)]
    rng = random.Random(seed)
    rng.shuffle(types)
    kinds = ["video"] * round(VIDEO_ROWS * n / total)
    kinds += ["image"] * (n - len(kinds))
    rng.shuffle(kinds)
    maker = RowMaker(seed + 1, spoil)
    return [maker.row(i, t, k) for i, (t, k) in enumerate(zip(types, kinds))]


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def time_rules(rows: list[dict]) -> dict:
    """Seconds of each rule's predicate alone over all rows (every rule of the default config); the accuracy
    rule is timed per problem type (rows grouped by type) and its row is the sum."""
    out, by_type = {}, {}
    for r in rows:
        by_type.setdefault(r["problem_type"], []).append(r)
    count_fails = lambda p, group: sum(not p(r) for r in group)  # noqa: E731
    for name, passes in rules(FilterConfig()).items():
        if name != "accuracy":
            seconds, failed = timed(count_fails, passes, rows)
            out[name] = {"seconds": seconds, "failed": failed, "rows": len(rows)}
            continue
        per_type = {}
        for ptype, group in sorted(by_type.items(), key=lambda kv: -len(kv[1])):
            seconds, failed = timed(count_fails, passes, group)
            per_type[ptype] = {
                "seconds": seconds,
                "failed": failed,
                "rows": len(group),
                "us_per_row": 1e6 * seconds / len(group),
            }
        out[name] = {
            "seconds": sum(v["seconds"] for v in per_type.values()),
            "failed": sum(v["failed"] for v in per_type.values()),
            "rows": len(rows),
        }
        out["accuracy_by_type"] = per_type
    return out


def time_stage_io(rows: list[dict], kept_rows: list[dict], filter_s: float) -> dict:
    """The filter stage's steps around apply_filter (tasks/filter.py), once each; ``kept_rows`` and
    ``filter_s`` (its best time) come from the timed runs of the default rules."""
    table = COT_SCHEMA.validate(pl.DataFrame(rows, schema=COT_SCHEMA_POLARS))
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "cot.parquet", Path(tmp) / "cot_filtered.parquet"
        table.write_parquet(src)
        del table
        gc.collect()
        steps = {}
        steps["read_parquet"], table = timed(pl.read_parquet, src)
        steps["to_dicts"], dicts = timed(table.to_dicts)
        del dicts  # the filter's input; apply_filter itself is timed above, the stage's numbers reuse its best
        steps["apply_filter"] = filter_s
        schema = {**table.schema, "process": pl.Utf8, "teacher_answer": pl.Utf8}
        steps["kept_dataframe"], kept = timed(pl.DataFrame, kept_rows, schema=schema)
        steps["schema_validate"], kept = timed(COT_FILTERED_SCHEMA.validate, kept)
        steps["write_parquet"], _ = timed(kept.write_parquet, dst)
        sizes = {"cot_parquet_mb": src.stat().st_size / 2**20, "cot_filtered_parquet_mb": dst.stat().st_size / 2**20}
    return {"steps_s": steps, "total_s": sum(steps.values()), "kept": kept.height, **sizes}


COT_SCHEMA_POLARS = {name: col.dtype.type for name, col in COT_SCHEMA.columns.items()}


def machine_info() -> dict:
    return common_machine_info(
        polars=pl.__version__, pandera=pandera.__version__, rouge_score=metadata.version("rouge-score")
    )


def summarize(name: str, cfg: FilterConfig, walls: list[float], metrics: dict) -> dict:
    best = min(walls)
    return {
        "config": name,
        "filter": asdict(cfg),
        "rules": list(metrics["rules"]),
        "rows": metrics["rows_in"],
        "wall_s": walls,
        "best_s": best,
        "median_s": statistics.median(walls),
        "rows_per_s": metrics["rows_in"] / best,
        "kept": metrics["kept"],
        "kept_share": metrics["kept_share"],
        "removed_by_rule": {k: v["removed"] for k, v in metrics["rules"].items()},
        "failed_by_rule": {k: v["failed"] for k, v in metrics["rules"].items()},
    }


def markdown(report: dict) -> str:
    base = report["results"][0]
    mix = ", ".join(f"{t} {n:,}" for t, n in report["rows_by_problem_type"].items())
    spoiled = sum(n for s, n in report["rows_by_spoil"].items() if s != "None")
    lines = [
        f"Rows: {base['rows']:,} synthetic CoT rows ({mix}; {report['rows_by_data_type'].get('video', 0):,} video), "
        f"unspoiled rationales {report['think_words']['min']}-{report['think_words']['max']} words (median "
        f"{report['think_words']['median']}), {spoiled:,} spoiled ({100 * spoiled / base['rows']:.1f} %), seed "
        f"{report['seed']}; cpus: {report['machine']['cpu_affinity']}. Best of {report['repeats']} runs (median beside "
        "it); ratio is best vs the baseline's best.",
        "",
        "| config | rules | best s | median s | rows/s | ratio to baseline | kept | kept share |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in report["results"]:
        lines.append(
            f"| {r['config']} | {', '.join(r['rules'])} | {r['best_s']:.2f} | {r['median_s']:.2f} "
            f"| {r['rows_per_s']:,.0f} | {r['best_s'] / base['best_s']:.2f}x | {r['kept']:,} "
            f"| {100 * r['kept_share']:.1f} % |"
        )
    rt = report["rule_times"]
    rule_names = [k for k in rt if k != "accuracy_by_type"]
    lines += [
        "",
        "Each rule's predicate alone over all rows (once):",
        "",
        "| rule | s | µs/row | failed |",
        "|---|---|---|---|",
    ]
    for name in rule_names:
        r = rt[name]
        lines.append(f"| {name} | {r['seconds']:.2f} | {1e6 * r['seconds'] / r['rows']:.1f} | {r['failed']:,} |")
    lines += [
        "",
        "The accuracy reward alone, by problem type:",
        "",
        "| problem type | rows | s | µs/row | share of accuracy time |",
        "|---|---|---|---|---|",
    ]
    acc_total = sum(v["seconds"] for v in rt["accuracy_by_type"].values())
    for ptype, v in rt["accuracy_by_type"].items():
        lines.append(
            f"| {ptype} | {v['rows']:,} | {v['seconds']:.2f} | {v['us_per_row']:.1f} "
            f"| {100 * v['seconds'] / acc_total:.0f} % |"
        )
    io = report["stage_io"]
    lines += [
        "",
        f"The stage's steps once (apply_filter: the default rules' best time above) ({io['cot_parquet_mb']:.0f} MB in, "
        f"{io['cot_filtered_parquet_mb']:.0f} MB out, {io['kept']:,} rows kept):",
        "",
        "| step | s |",
        "|---|---|",
    ]
    for step, s in io["steps_s"].items():
        lines.append(f"| {step} | {s:.2f} |")
    lines.append(f"| total | {io['total_s']:.2f} |")
    return "\n".join(lines + ["", interpretation(report)]) + "\n"


def interpretation(report: dict) -> str:
    """A few sentences on what the tables show, written from their numbers."""
    base, default, paper = report["results"]
    rt = report["rule_times"]
    rule_s = {k: v["seconds"] for k, v in rt.items() if k != "accuracy_by_type"}
    acc = rt["accuracy_by_type"]
    slowest_type = max(acc, key=lambda t: acc[t]["seconds"])
    acc_total = sum(v["seconds"] for v in acc.values())
    top_rule = max(rule_s, key=rule_s.get)
    io = report["stage_io"]
    text = [
        f"The full rule set costs {default['best_s'] / base['best_s']:.2f}x the accuracy-only baseline "
        f"({default['best_s']:.1f} vs {base['best_s']:.1f} s for {base['rows']:,} rows) and the paper's "
        f"setting {paper['best_s'] / base['best_s']:.2f}x ({paper['best_s']:.1f} s); single-threaded, "
        f"{default['rows_per_s']:,.0f} to {base['rows_per_s']:,.0f} rows/s.",
        f"The most expensive predicate is {top_rule} ({rule_s[top_rule]:.1f} s of {sum(rule_s.values()):.1f} s "
        "summed over the rules alone).",
        f"Within the accuracy rule, {slowest_type} rows dominate: {acc[slowest_type]['rows']:,} rows "
        f"({100 * acc[slowest_type]['rows'] / base['rows']:.0f} % of the table) take "
        f"{100 * acc[slowest_type]['seconds'] / acc_total:.0f} % of its time at "
        f"{acc[slowest_type]['us_per_row']:.0f} µs a row, against "
        f"{acc['multiple choice']['us_per_row']:.1f} µs for a multiple-choice row.",
    ]
    if "repetition" in rule_s:
        text.append(
            f"Of the rules the paper does not use, repetition costs {rule_s['repetition']:.1f} s and length "
            f"{rule_s.get('length', 0):.1f} s."
        )
    kept_gap = base["kept_share"] - default["kept_share"]
    text.append(
        f"The extra rules remove {100 * kept_gap:.1f} points more rows than accuracy alone "
        f"({100 * base['kept_share']:.1f} % -> {100 * default['kept_share']:.1f} % kept)."
    )
    spread = max(max(r["wall_s"]) / min(r["wall_s"]) for r in report["results"])
    if spread > 1.1:
        text.append(
            f"Runs of one configuration differ by up to {100 * (spread - 1):.0f} % (a shared machine), "
            "so read the ratios, and the per-rule times measured once, to about that precision."
        )
    steps = io["steps_s"]
    io_s = io["total_s"] - steps["apply_filter"]
    text.append(
        f"Around the filter, the stage spends {io_s:.1f} s on reading, converting to dicts, building, "
        f"validating and writing the table ({steps['to_dicts']:.1f} s of it in to_dicts, "
        f"{steps['schema_validate']:.1f} s in schema validation), so a full run of the stage takes about "
        f"{io['total_s']:.0f} s."
    )
    return " ".join(text)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=sum(TYPE_COUNTS.values()), help="rows (type mix scaled to it)")
    parser.add_argument("--repeats", type=int, default=2, help="timed runs per filter configuration")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=RESULTS, help="directory for filter.json and filter.md")
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    spoil = spoil_shares()
    build_s, rows = timed(make_rows, args.rows, args.seed, spoil)
    print(f"built {len(rows):,} rows in {build_s:.1f} s", flush=True)
    paper_cfg, paper_examples = paper_filter()
    configs = [
        ("baseline (accuracy only)", BASELINE, 3),
        ("default (all rules)", FilterConfig(), 3),
        ("paper profile", paper_cfg, paper_examples),
    ]

    for _, cfg, examples in configs:  # warm-up: the ROUGE scorer, regexes, jiwer
        apply_filter(rows[:WARMUP_ROWS], cfg, examples=examples)

    walls = {name: [] for name, _, _ in configs}
    metrics, kept_default = {}, []
    for i in range(1, args.repeats + 1):  # interleaved, so drift in machine load spreads over all configurations
        for name, cfg, examples in configs:
            gc.collect()
            wall, result = timed(apply_filter, rows, cfg, examples=examples)
            walls[name].append(wall)
            metrics[name] = result.metrics
            kept_default = result.kept if cfg == FilterConfig() else kept_default
            del result
            print(
                f"repeat {i} {name}: {wall:.2f} s, {len(rows) / wall:,.0f} rows/s, kept {metrics[name]['kept']:,}",
                flush=True,
            )

    gc.collect()
    rule_times = time_rules(rows)
    print(
        "rules alone: "
        + ", ".join(f"{k} {v['seconds']:.2f} s" for k, v in rule_times.items() if k != "accuracy_by_type"),
        flush=True,
    )
    gc.collect()
    stage_io = time_stage_io(rows, kept_default, min(walls[configs[1][0]]))
    del kept_default
    print("stage steps: " + ", ".join(f"{k} {v:.2f} s" for k, v in stage_io["steps_s"].items()), flush=True)

    think = sorted(len(think_text(r["completion"]).split()) for r in rows if r["teacher_spoil"] is None)
    report = {
        "machine": machine_info(),
        "code": code_version(),
        "seed": args.seed,
        "build_rows_s": build_s,
        "rows_by_problem_type": dict(Counter(r["problem_type"] for r in rows).most_common()),
        "rows_by_data_type": dict(sorted(Counter(r["data_type"] for r in rows).items())),
        "rows_by_spoil": dict(Counter(str(r["teacher_spoil"]) for r in rows).most_common()),
        "spoil_shares": spoil,
        "think_words": {"min": think[0], "median": think[len(think) // 2], "max": think[-1]},
        "repeats": args.repeats,
        "warmup_rows": WARMUP_ROWS,
        "results": [summarize(name, cfg, walls[name], metrics[name]) for name, cfg, _ in configs],
        "removed_by_spoil_default": metrics[configs[1][0]].get("removed_by_spoil"),
        "rule_times": rule_times,
        "stage_io": stage_io,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "filter.json").write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    table = markdown(report)
    title = f"# Filter stage: {len(rows):,} CoT rows, rule sets\n\n"
    (args.out / "filter.md").write_text(title + table, encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
