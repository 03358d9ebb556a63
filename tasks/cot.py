"""DVC stage `cot`: a teacher writes <think>…</think><answer>…</answer> for every collected row.

    data/collected.parquet -> data/cot/ (resumable per-row log), data/cot.parquet, data/cot_errors.jsonl, metrics/cot.json

Teachers (params `cot.teacher`): `scripted` (synthetic rows, from the generator's facts; the tiny
default), `transformers` (a local VLM directory in process), `vllm` (the GPU environment).
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from pathlib import Path

import polars as pl
from tqdm import tqdm

from videor1.cot import ModelTeacher, ScriptedTeacher, Teacher, TeacherDied, generate_cot
from videor1.data.schema import COLLECTED_TABLE_SCHEMA, COT_SCHEMA
from videor1.generation import make_backend
from videor1.io import atomic_path, write_json, write_jsonl, write_run_record
from videor1.models import check_model_dir, load_processor, model_signature
from videor1.params import CotParams
from videor1.store import ResultStore, fingerprint

from .params import config, set_threads
from .tables import read_stage_table

IN_TABLE = Path("data/collected.parquet")
LOG = Path("data/cot/completions.jsonl")
OUT_TABLE = Path("data/cot.parquet")
OUT_ERRORS = Path("data/cot_errors.jsonl")
OUT_METRICS = Path("metrics/cot.json")


def tensor_parallel_size(value: int | str) -> int:
    if value == "auto":  # every visible GPU
        import torch

        return max(1, torch.cuda.device_count())
    return value


def make_teacher(cfg: CotParams) -> Teacher:
    if cfg.teacher == "scripted":
        s = cfg.scripted
        return ScriptedTeacher(s.facts, split=s.split, seed=s.seed, spoil=s.spoil)
    model_dir = check_model_dir(cfg.model)
    backend = make_backend(
        cfg.teacher,
        str(model_dir),
        batch_size=cfg.batch_size,
        device=cfg.device,
        dtype=cfg.dtype,
        tensor_parallel_size=tensor_parallel_size(cfg.tensor_parallel_size),
        max_model_len=cfg.max_model_len,
        seed=cfg.seed,
        attn_implementation=cfg.attn_implementation,
    )
    return ModelTeacher(
        backend,
        load_processor(model_dir),
        sampling=cfg.sampling(),
        rules=cfg.media,
        max_prompt_tokens=cfg.max_model_len - cfg.max_new_tokens,
        model_signature=model_signature(model_dir),
        backend_name=cfg.teacher,
        media_workers=cfg.media_workers,
    )


def cot_table(rows: list[dict], records: list[dict]) -> pl.DataFrame:
    done = [(row, rec) for row, rec in zip(rows, records) if rec["completion"] is not None]
    table = pl.DataFrame(
        [
            {
                **{k: v for k, v in row.items() if k != "process"},
                "completion": rec["completion"],
                "teacher_spoil": rec["meta"].get("spoil"),
                "completion_tokens": rec["meta"].get("completion_tokens"),
            }
            for row, rec in done
        ],
        schema_overrides={"teacher_spoil": pl.Utf8, "completion_tokens": pl.Int64},
    )
    return COT_SCHEMA.validate(table)


def error_entry(row: dict, rec: dict, max_attempts: int) -> dict:
    attempts = rec.get("attempts", 1)
    return {
        "problem_id": row["problem_id"],
        "data_source": row["data_source"],
        "path": row["path"],
        "reason": rec["error"],
        "attempts": attempts,
        "will_retry": bool(rec.get("retry")) and attempts < max_attempts,
    }


def main() -> None:
    cfg = config("cot")
    set_threads(cfg.threads)
    rows = read_stage_table("cot", IN_TABLE, COLLECTED_TABLE_SCHEMA, made_by="collect").to_dicts()
    try:
        teacher = make_teacher(cfg)
    except (FileNotFoundError, ValueError) as err:
        sys.exit(f"cot: {err}")
    store = ResultStore(LOG, fingerprint(teacher.config()), key="row_key")
    start = time.perf_counter()
    with tqdm(total=len(rows), desc=f"cot ({cfg.teacher})", unit="row", dynamic_ncols=True) as bar:
        try:
            records, generated = generate_cot(
                rows, teacher, store, batch_size=cfg.batch_size, max_attempts=cfg.max_attempts, on_progress=bar.update
            )
        except TeacherDied as err:
            sys.exit(f"cot: stopped: {err}. Every finished row is kept in {LOG}; rerun the stage to go on.")
    seconds = time.perf_counter() - start
    errors = [error_entry(row, rec, cfg.max_attempts) for row, rec in zip(rows, records) if rec["completion"] is None]
    if len(errors) == len(rows):
        first = errors[0]["reason"] if errors else "-"
        sys.exit(f"cot: the teacher processed none of {len(rows)} rows; first reason: {first}")
    table = cot_table(rows, records)
    with atomic_path(OUT_TABLE) as tmp:
        table.write_parquet(tmp)
    write_jsonl(OUT_ERRORS, errors)
    reasons = Counter(e["reason"].split(":", 1)[0] for e in errors)
    retrying = sum(e["will_retry"] for e in errors)
    write_json(
        OUT_METRICS,
        {
            "teacher": cfg.teacher,
            "rows_in": len(rows),
            "completed": table.height,
            "errors": len(errors),
            "errors_by_reason": dict(sorted(reasons.items())),
            "errors_to_retry": retrying,
            "max_attempts": cfg.max_attempts,
            "spoiled": dict(sorted(Counter(str(s) for s in table["teacher_spoil"].to_list()).items())),
        },
    )
    write_run_record(
        "cot",
        {
            "generated_now": generated,
            "seconds": round(seconds, 2),
            "rows_per_second": round(generated / seconds, 2) if generated else None,
        },
    )
    print(f"cot: {table.height} of {len(rows)} rows completed ({generated} now), {len(errors)} skipped {dict(reasons)}")
    if retrying:
        print(
            f"cot: the teacher failed on {retrying} rows (attempt < {cfg.max_attempts}): `dvc repro -f cot` tries them again"
        )


if __name__ == "__main__":
    main()
