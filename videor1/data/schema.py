"""The Video-R1 row format (spec section 2) as pandera schemas on polars.

``ROW_SCHEMA`` checks rows as they arrive from a source file; ``COLLECTED_SCHEMA``
checks the table the collect stage hands to the next stage. Checks are
row-wise wherever possible, so a failure names the offending row and the
collect stage can quarantine exactly that row with the check's message.
"""

from __future__ import annotations

import polars as pl
import pandera.polars as pa

DATA_TYPES = ("image", "video")
PROBLEM_TYPES = ("multiple choice", "numerical", "OCR", "free-form", "regression")

# Python types each field must have before a table is built (a wrong type is a reason, not a cast).
FIELD_TYPES: dict[str, type | tuple[type, ...]] = {
    "problem_id": int,
    "problem": str,
    "data_type": str,
    "problem_type": str,
    "options": list,
    "solution": str,
    "path": str,
    "data_source": str,
}
OPTIONAL_FIELD_TYPES: dict[str, type] = {"process": str}

POLARS_TYPES = {
    "problem_id": pl.Int64,
    "problem": pl.Utf8,
    "data_type": pl.Utf8,
    "problem_type": pl.Utf8,
    "options": pl.List(pl.Utf8),
    "process": pl.Utf8,
    "solution": pl.Utf8,
    "path": pl.Utf8,
    "data_source": pl.Utf8,
}

ANSWER_RE = r"(?s)^\s*<answer>.*</answer>\s*$"
OPTION_RE = r"^[A-Z]\. \S"
LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _options_iff_multiple_choice(data: pa.PolarsData) -> pl.LazyFrame:
    has_options = pl.col("options").list.len() > 0
    return data.lazyframe.select(has_options == (pl.col("problem_type") == "multiple choice"))


def _options_well_labelled(data: pa.PolarsData) -> pl.LazyFrame:
    """Each option reads 'A. ...', 'B. ...' in order."""
    opts = pl.col("options")
    labelled = opts.list.eval(pl.element().str.contains(OPTION_RE)).list.all()
    expected_letter = pl.lit(LETTERS).str.slice(pl.int_range(pl.len()), 1)
    in_order = opts.list.eval(pl.element().str.slice(0, 1) == expected_letter).list.all()
    return data.lazyframe.select(labelled & in_order)


def _mc_answer_is_an_option(data: pa.PolarsData) -> pl.LazyFrame:
    letter = pl.col("solution").str.extract(r"<answer>\s*([A-Z])\s*</answer>")
    letters = pl.col("options").list.eval(pl.element().str.slice(0, 1))
    ok = letters.list.contains(letter).fill_null(False)
    return data.lazyframe.select((pl.col("problem_type") != "multiple choice") | ok)


def _number_solution_parses(data: pa.PolarsData) -> pl.LazyFrame:
    """A numerical or regression solution must be a number the scorer reads, or no answer can ever score."""
    from ..rewards.answer import unscorable

    ok = pl.struct("solution", "problem_type").map_elements(
        lambda r: unscorable(r["solution"], r["problem_type"]) is None, return_dtype=pl.Boolean)
    return data.lazyframe.select(ok)


def _path_rules() -> list[pa.Check]:
    return [
        pa.Check.str_startswith("./", error="path must be relative and start with './'"),
        pa.Check(
            lambda d: d.lazyframe.select(~pl.col(d.key).str.contains(r"(^|/)\.\.(/|$)")),
            error="path must not contain '..'",
        ),
        pa.Check(lambda d: d.lazyframe.select(~pl.col(d.key).str.contains("\\\\|\x00")),
                 error="path must not contain a backslash or NUL"),
    ]


def _row_columns() -> dict[str, pa.Column]:
    nonempty = pa.Check.str_length(min_value=1, error="must not be empty")
    return {
        "problem_id": pa.Column(pl.Int64, pa.Check.ge(0, error="problem_id must be >= 0")),
        "problem": pa.Column(pl.Utf8, nonempty),
        "data_type": pa.Column(pl.Utf8, pa.Check.isin(DATA_TYPES, error=f"data_type must be one of {DATA_TYPES}")),
        "problem_type": pa.Column(
            pl.Utf8, pa.Check.isin(PROBLEM_TYPES, error=f"problem_type must be one of {PROBLEM_TYPES}")
        ),
        "options": pa.Column(pl.List(pl.Utf8)),
        "solution": pa.Column(pl.Utf8, pa.Check.str_matches(ANSWER_RE, error="solution must be wrapped in <answer></answer>")),
        "path": pa.Column(pl.Utf8, _path_rules()),
        "data_source": pa.Column(pl.Utf8, nonempty),
    }


_ROW_CHECKS = [
    pa.Check(_options_iff_multiple_choice, error="options must be present exactly for multiple choice"),
    pa.Check(_options_well_labelled, error="options must read 'A. ...', 'B. ...' in order"),
    pa.Check(_mc_answer_is_an_option, error="multiple-choice solution must be one of the option letters"),
    pa.Check(_number_solution_parses, error="numerical or regression solution must be a number (it could never score)"),
]

ROW_SCHEMA = pa.DataFrameSchema(_row_columns(), checks=_ROW_CHECKS, name="video_r1_row", strict=False)

COLLECTED_SCHEMA = pa.DataFrameSchema(
    {
        **_row_columns(),
        "media_root": pa.Column(pl.Utf8),
        "num_frames": pa.Column(pl.Int64, nullable=True),
        "video_fps": pa.Column(pl.Float64, nullable=True),
        "height": pa.Column(pl.Int64, pa.Check.gt(0)),
        "width": pa.Column(pl.Int64, pa.Check.gt(0)),
    },
    checks=[
        *_ROW_CHECKS,
        pa.Check(lambda d: d.lazyframe.select(pl.col("problem_id").is_unique()), error="problem_id must be unique"),
        pa.Check(
            lambda d: d.lazyframe.select((pl.col("data_type") == "video") == pl.col("num_frames").is_not_null()),
            error="num_frames is set exactly for videos",
        ),
    ],
    name="collected",
    strict=True,
    unique=None,
)


# data/collected.parquet: the collected rows plus `process`, a CoT a source may already carry (else null).
COLLECTED_TABLE_SCHEMA = COLLECTED_SCHEMA.add_columns({"process": pa.Column(pl.Utf8, nullable=True)})


def _collected_columns() -> dict[str, pa.Column]:
    return dict(COLLECTED_SCHEMA.columns)


# The cot stage's table: every collected row the teacher processed, with its completion.
COT_SCHEMA = pa.DataFrameSchema(
    {
        **_collected_columns(),
        "completion": pa.Column(pl.Utf8),
        "teacher_spoil": pa.Column(pl.Utf8, nullable=True),  # scripted teacher only: what it spoiled on purpose
        "completion_tokens": pa.Column(pl.Int64, nullable=True),
    },
    checks=list(COLLECTED_SCHEMA.checks),
    name="cot",
    strict=True,
)

# The filter stage's table (the COT-165k equivalent): rows whose CoT passed every rule.
COT_FILTERED_SCHEMA = pa.DataFrameSchema(
    {
        **dict(COT_SCHEMA.columns),
        "process": pa.Column(pl.Utf8, pa.Check.str_matches(r"(?s)^<think>.*</think>$", error="process must be one <think> block")),
        "teacher_answer": pa.Column(pl.Utf8),
    },
    checks=list(COLLECTED_SCHEMA.checks),
    name="cot_filtered",
    strict=True,
)
