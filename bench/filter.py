"""Benchmark: the CoT filter (``videor1.cot.apply_filter``) and the filter stage's I/O on a Video-R1-260k-sized table.

The rows are the pipeline's own CoT table (``data/cot.parquet``: the scripted teacher's rationales for the synthetic
rows, spoiled in the tiny profile's shares) drawn with replacement to 263,071 rows in Video-R1-260k's problem-type
mix (multiple choice 168,769; free-form 38,722; numerical 34,354; OCR 15,886; regression 5,340), each with a
problem_id of its own. Timed, interleaved ``--repeats`` times after a warm-up:

* baseline - the accuracy rule alone, what the public code filters on;
* tiny     - every rule, the tiny profile's ``filter`` settings;
* paper    - the paper profile's (accuracy, format, option letter, numeric).

Then once: each rule's predicate alone over all rows (accuracy also per problem type: ROUGE for free-form, WER for
OCR), and the stage's steps (``tasks/filter.py``): read the table, ``to_dicts``, filter, build and validate the kept
table, write it.

    python -m bench.filter [--rows 263071] [--repeats 2]
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import polars as pl

from bench import harness
from videor1.cot import FilterConfig, apply_filter, rules, think_text
from videor1.data.schema import COT_FILTERED_SCHEMA

TYPE_COUNTS = {"multiple choice": 168_769, "free-form": 38_722, "numerical": 34_354, "OCR": 15_886, "regression": 5_340}
BASELINE = FilterConfig(
    min_words=None,
    max_words=None,
    max_repeated_ngram_share=None,
    check_format=False,
    check_option_letter=False,
    check_numeric=False,
)


def scaled(cot: pl.DataFrame, n: int) -> pl.DataFrame:
    """``n`` rows drawn from the CoT table in Video-R1-260k's problem-type mix, shuffled, numbered afresh."""
    total = sum(TYPE_COUNTS.values())
    parts = [
        cot.filter(pl.col("problem_type") == t).sample(round(c * n / total), with_replacement=True, seed=i)
        for i, (t, c) in enumerate(TYPE_COUNTS.items())
    ]
    table = pl.concat(parts).sample(fraction=1.0, shuffle=True, seed=0)
    return table.with_columns(problem_id=pl.int_range(1, table.height + 1, dtype=table["problem_id"].dtype))


def timed(fn, *args, **kwargs):
    start = time.perf_counter()
    out = fn(*args, **kwargs)
    return time.perf_counter() - start, out


def rule_times(rows: list[dict], cfg: FilterConfig) -> list[dict]:
    """Each predicate alone over all rows, and the accuracy rule's over each problem type's rows."""
    predicates, out = rules(cfg), []
    groups = {name: rows for name in predicates}
    groups |= {f"accuracy, {t}": [r for r in rows if r["problem_type"] == t] for t in TYPE_COUNTS}
    for label, group in groups.items():
        passes = predicates[label.split(",")[0]]
        seconds, failed = timed(lambda: sum(not passes(r) for r in group))  # noqa: B023
        out.append(
            {"rule": label, "rows": len(group), "s": seconds, "µs/row": 1e6 * seconds / len(group), "failed": failed}
        )
    return out


def stage_steps(table: pl.DataFrame, cfg: FilterConfig) -> dict[str, float]:
    """The filter stage's steps once, as ``tasks/filter.py`` takes them."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "cot.parquet", Path(tmp) / "cot_filtered.parquet"
        table.write_parquet(src)
        steps = {}
        steps["read_parquet"], table = timed(pl.read_parquet, src)
        steps["to_dicts"], rows = timed(table.to_dicts)
        steps["apply_filter"], result = timed(apply_filter, rows, cfg)
        schema = {**table.schema, "process": pl.Utf8, "teacher_answer": pl.Utf8}
        steps["kept DataFrame"], kept = timed(pl.DataFrame, result.kept, schema=schema)
        steps["schema validation"], kept = timed(COT_FILTERED_SCHEMA.validate, kept)
        steps["write_parquet"], _ = timed(kept.write_parquet, dst)
    return steps


def main() -> None:
    ap = harness.arguments(__doc__)
    ap.add_argument("--rows", type=int, default=sum(TYPE_COUNTS.values()))
    ap.add_argument("--repeats", type=int, default=2)
    args = ap.parse_args()
    cot = pl.read_parquet(harness.project("cot") / "data" / "cot.parquet")
    table = scaled(cot, args.rows)
    rows = table.to_dicts()
    tiny, paper = harness.params()["filter"], harness.params("paper")["filter"]
    configs = {
        "baseline (accuracy only)": BASELINE,
        "tiny (every rule)": FilterConfig(**{k: v for k, v in tiny.items() if k != "examples"}),
        "paper": FilterConfig(**{k: v for k, v in paper.items() if k != "examples"}),
    }
    cases = {name: lambda cfg=cfg: apply_filter(rows, cfg).metrics for name, cfg in configs.items()}
    timings = harness.interleave(cases, args.repeats)
    speedups = harness.speedups(timings, "baseline (accuracy only)")
    results = [
        {
            "config": name,
            "rules": ", ".join(t.results[0]["rules"]),
            "median s": t.median,
            "rows/s": len(rows) / t.median,
            "time / baseline": 1 / speedups[name],
            "kept": t.results[0]["kept"],
            "kept share": f"{100 * t.results[0]['kept_share']:.1f} %",
        }
        for name, t in timings.items()
    ]
    per_rule = rule_times(rows, configs["tiny (every rule)"])
    steps = stage_steps(table, configs["tiny (every rule)"])
    words = sorted(len(think_text(c).split()) for c in cot.filter(pl.col("teacher_spoil").is_null())["completion"])
    spoiled = table["teacher_spoil"].is_not_null().sum()
    md = [
        f"# Filter stage: {len(rows):,} CoT rows, rule sets",
        "",
        f"The pipeline's {cot.height} scripted CoT rows (unspoiled rationales {words[0]}-{words[-1]} words, median "
        f"{words[len(words) // 2]}) drawn to Video-R1-260k's problem-type mix; {spoiled:,} rows spoiled "
        f"({100 * spoiled / len(rows):.1f} %). Medians of {args.repeats} interleaved runs after a warm-up.",
        "",
        *harness.table(results),
        "",
        "Each rule's predicate alone over all rows (once):",
        "",
        *harness.table(per_rule),
        "",
        f"The stage's steps once (tiny rules), {sum(steps.values()):.1f} s in all:",
        "",
        *harness.table([{"step": k, "s": v} for k, v in steps.items()]),
    ]
    record = {"config": vars(args), "results": results, "rule_times": per_rule, "stage_steps_s": steps}
    print(harness.write("filter", record, md, args.out, polars=pl.__version__))


if __name__ == "__main__":
    main()
