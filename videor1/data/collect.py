"""Collect + balance: rows from their sources to one checked, probed, balanced table.

Order of work, each step sending the rows it rejects to quarantine with a reason:
field types -> schema (values) -> duplicate ids -> media probe (readable, inside
the media root, samplable under the run's frame/pixel rules) -> per-source
balancing (not a rejection: counted separately).
"""

from __future__ import annotations

import os
import re
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import pandera.polars as pa
import polars as pl

from ..media import MediaRules, smart_nframes, smart_resize
from .balance import SourceRule, balance
from .probe import Probe, ProbeCache, probe_all
from .rows import read_rows, rows_to_frame, type_problems
from .schema import COLLECTED_SCHEMA, COLLECTED_TABLE_SCHEMA, ROW_SCHEMA


@dataclass(frozen=True)
class RowSource:
    rows: str  # a Video-R1 JSON array or JSONL file
    media_root: str  # row paths are relative to this directory


@dataclass
class CollectConfig:
    inputs: list[RowSource]
    media: MediaRules = field(default_factory=MediaRules)
    sources: list[SourceRule] = field(default_factory=list)
    default_weight: float = 1.0
    seed: int = 0
    workers: int = 1
    probe_cache: str | None = None


@dataclass
class CollectResult:
    table: pl.DataFrame
    quarantine: list[dict]
    metrics: dict  # what the inputs determine: the same on every run and machine
    run: dict  # how this run went (media probed now vs from the probe cache): a run record, never a stage output


def _reject(quarantine: list, origin: tuple[str, int], step: str, reason: str, row, cause: str | None = None) -> None:
    """One quarantine entry. ``reason`` is the whole message (naming the file for media);
    ``cause`` the same without row-specific detail, to count entries by kind."""
    quarantine.append(
        {
            "source_file": origin[0],
            "index": origin[1],
            "step": step,
            "reason": reason,
            "cause": cause or reason,
            "row": row,
        }
    )


def _schema_reasons(frame: pl.DataFrame) -> dict[int, list[str]]:
    """Row position -> the messages of the checks it failed."""
    try:
        ROW_SCHEMA.validate(frame, lazy=True)
        return {}
    except pa.errors.SchemaErrors as err:
        reasons: dict[int, list[str]] = {}
        for case in err.failure_cases.iter_rows(named=True):
            if case["index"] is None:  # a whole-column failure (dtype): cannot happen after type_problems
                raise RuntimeError(f"schema failed on a whole column: {case}") from err
            where = f"{case['column']}: " if case["column"] else ""
            reasons.setdefault(case["index"], []).append(f"{where}{case['check']}")
        return reasons


def _media_problem(probe: Probe, rules: MediaRules) -> str | None:
    if not probe.ok:
        return probe.reason
    try:
        if probe.data_type == "video":
            smart_nframes(
                probe.num_frames,
                probe.video_fps,
                fps=rules.fps,
                min_frames=rules.min_frames,
                max_frames=rules.max_frames,
            )
            smart_resize(
                probe.height, probe.width, min_pixels=rules.video_min_pixels, max_pixels=rules.video_max_pixels
            )
        else:
            smart_resize(
                probe.height, probe.width, min_pixels=rules.image_min_pixels, max_pixels=rules.image_max_pixels
            )
    except ValueError as err:
        return f"{probe.path}: {err}"
    return None


def _media_cause(problem: str, path: str) -> str:
    """The problem without the file name or the decoder's detail in parentheses."""
    return re.sub(r" \(.*\)$", "", problem.removeprefix(f"{path}: "))


def _portable(problem: str, resolved: str, media_root: str, rel: str) -> str:
    """The problem naming the file as params.yaml and the row do (media root + row path), never this checkout's
    absolute path: the same inputs give the same quarantine file, and the same DVC hash, in any directory."""
    return problem.replace(resolved, os.path.normpath(os.path.join(media_root, rel)))


def _resolver(root: Path):
    """rel -> absolute path under ``root``, or None if it escapes the root (also through symlinks).

    Memoised: rows share media files, and resolving is the costly part of a cached run.
    """
    prefix = str(root).rstrip(os.sep) + os.sep
    memo: dict[str, str | None] = {}

    def resolve(rel: str) -> str | None:
        if rel not in memo:
            target = os.path.realpath(os.path.join(prefix, rel))
            memo[rel] = target if target.startswith(prefix) else None
        return memo[rel]

    return resolve


def collect(cfg: CollectConfig) -> CollectResult:
    quarantine: list[dict] = []
    tables = []
    seen_ids: dict[int, str] = {}
    for source in cfg.inputs:
        rows = read_rows(source.rows)
        root = Path(source.media_root).resolve()
        resolve = _resolver(root)
        if not root.is_dir():
            raise FileNotFoundError(f"media root {source.media_root} does not exist")

        typed, origins = [], []
        for i, row in enumerate(rows):
            problems = type_problems(row)
            if problems:
                _reject(quarantine, (source.rows, i), "types", "; ".join(problems), row)
            else:
                typed.append(row)
                origins.append(i)
        if not typed:
            continue
        frame = rows_to_frame(typed)
        reasons = _schema_reasons(frame)

        keep_pos, abs_paths = [], []
        for pos, row in enumerate(typed):
            origin = (source.rows, origins[pos])
            if pos in reasons:
                _reject(quarantine, origin, "schema", "; ".join(reasons[pos]), row)
                continue
            pid = row["problem_id"]
            if pid in seen_ids:
                _reject(
                    quarantine,
                    origin,
                    "duplicate",
                    f"duplicate problem_id {pid} (first seen in {seen_ids[pid]})",
                    row,
                    cause="duplicate problem_id",
                )
                continue
            resolved = resolve(row["path"])
            if resolved is None:
                _reject(
                    quarantine,
                    origin,
                    "media",
                    f"path {row['path']!r} escapes the media root {source.media_root}",
                    row,
                    cause="path escapes the media root",
                )
                continue
            seen_ids[pid] = f"{source.rows}#{origins[pos]}"
            keep_pos.append(pos)
            abs_paths.append(resolved)
        if not keep_pos:
            continue
        tables.append((source, typed, origins, keep_pos, abs_paths, frame[keep_pos]))

    cache = ProbeCache(cfg.probe_cache)
    items = [
        (p, t) for (_, typed, _, keep, paths, _) in tables for p, t in zip(paths, (typed[k]["data_type"] for k in keep))
    ]
    probes, probed_now = probe_all(items, cache, workers=cfg.workers)

    valid = []
    media_problems: dict[tuple[str, str], str | None] = {}
    for source, typed, origins, keep_pos, abs_paths, frame in tables:
        ok_mask, media_cols = [], {"num_frames": [], "video_fps": [], "height": [], "width": []}
        for pos, path, dtype in zip(keep_pos, abs_paths, frame["data_type"]):
            probe = probes[(path, dtype)]
            if (path, dtype) not in media_problems:  # once per distinct file: rows share media
                media_problems[(path, dtype)] = _media_problem(probe, cfg.media)
            problem = media_problems[(path, dtype)]
            ok_mask.append(problem is None)
            if problem is not None:
                _reject(
                    quarantine,
                    (source.rows, origins[pos]),
                    "media",
                    _portable(problem, path, source.media_root, typed[pos]["path"]),
                    typed[pos],
                    cause=_media_cause(problem, path),
                )
                continue
            for name in media_cols:
                media_cols[name].append(getattr(probe, name))
        good = frame.filter(pl.Series(ok_mask, dtype=pl.Boolean))
        good = good.with_columns(
            pl.lit(source.media_root).alias("media_root"),
            pl.Series("num_frames", media_cols["num_frames"], dtype=pl.Int64),
            pl.Series("video_fps", media_cols["video_fps"], dtype=pl.Float64),
            pl.Series("height", media_cols["height"], dtype=pl.Int64),
            pl.Series("width", media_cols["width"], dtype=pl.Int64),
        )
        valid.append(good)

    if sum(t.height for t in valid) == 0:
        raise ValueError(f"collect produced no valid rows ({len(quarantine)} quarantined): see the quarantine file")
    table = pl.concat(valid, how="diagonal_relaxed")
    if "process" not in table.columns:
        table = table.with_columns(pl.lit(None, dtype=pl.Utf8).alias("process"))
    table, balance_stats = balance(table, cfg.sources, seed=cfg.seed, default_weight=cfg.default_weight)
    if table.height == 0:
        raise ValueError("collect kept no rows after balancing: check the source weights and caps")
    table = table.select([c for c in COLLECTED_SCHEMA.columns] + ["process"])
    table = _validated(table)
    return CollectResult(
        table,
        quarantine,
        _metrics(table, quarantine, balance_stats, len(probes)),
        {"media_probed_this_run": probed_now, "media_from_cache": len(probes) - probed_now},
    )


def _validated(table: pl.DataFrame) -> pl.DataFrame:
    return COLLECTED_TABLE_SCHEMA.validate(table)


def _counts(series: pl.Series) -> dict:
    return dict(sorted(Counter(series.to_list()).items()))


def _metrics(table: pl.DataFrame, quarantine: list[dict], balance_stats: dict, distinct_media: int) -> dict:
    return {
        "rows": table.height,
        "quarantined": len(quarantine),
        "quarantined_by_step": dict(sorted(Counter(q["step"] for q in quarantine).items())),
        "by_data_type": _counts(table["data_type"]),
        "by_problem_type": _counts(table["problem_type"]),
        "by_data_source": _counts(table["data_source"]),
        "balance": balance_stats,
        "media": {"distinct": distinct_media},
    }
