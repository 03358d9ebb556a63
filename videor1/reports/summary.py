"""reports/summary.md: what each stage did, in numbers, with the curves and the eval table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence


def _table(header: Sequence[str], rows: Sequence[Sequence]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join("—" if c is None else str(c) for c in row) + " |" for row in rows),
    ]


def _fmt(x, digits: int = 3):
    return None if x is None else (f"{x:.{digits}f}" if isinstance(x, float) else x)


def render_summary(
    *,
    profile: str,
    collect: Mapping,
    quarantine_reasons: Mapping[str, int],
    cot: Mapping,
    filter_: Mapping,
    sft: Mapping,
    rl: Mapping,
    eval_table: str,
    figures: Mapping[str, str],
) -> str:
    """Markdown from the stages' metrics files; ``figures`` maps a caption to a PNG path relative to the report."""
    lines = [f"# videor1 pipeline summary ({profile} profile)", ""]
    lines += [
        "## Data",
        "",
        f"Collected **{collect['rows']}** rows "
        f"({', '.join(f'{k} {v}' for k, v in collect['by_data_type'].items())}); "
        f"quarantined **{collect['quarantined']}**.",
        "",
    ]
    lines += _table(["problem type", "rows"], sorted(collect["by_problem_type"].items()))
    if quarantine_reasons:
        lines += ["", "Quarantine reasons:", ""]
        lines += _table(["step: reason", "rows"], sorted(quarantine_reasons.items(), key=lambda kv: -kv[1]))
    balance = collect["balance"]
    if balance:
        valid, kept = (sum(b[k] for b in balance.values()) for k in ("available", "kept"))
        lines += ["", f"Balancing kept {kept} of {valid} valid rows (`collect.sources`: weight, then cap):", ""]
        lines += _table(
            ["data source", "valid", "weight", "cap", "kept"],
            [
                (src, b["available"], b["weight"], "—" if b["cap"] is None else b["cap"], b["kept"])
                for src, b in sorted(balance.items())
            ],
        )
    lines += [
        "",
        "## CoT and filter",
        "",
        f"Teacher `{cot['teacher']}`: {cot['completed']} of {cot['rows_in']} rows completed, {cot['errors']} skipped"
        + (
            f" ({', '.join(f'{k}: {v}' for k, v in cot['errors_by_reason'].items())})."
            if cot.get("errors_by_reason")
            else "."
        ),
        f"Filter: kept **{filter_['kept']}** of {filter_['rows_in']} ({100 * filter_['kept_share']:.1f} %).",
        "",
    ]
    lines += _table(
        ["rule", "removed (first failing rule)", "failing at all"],
        [(name, r["removed"], r["failed"]) for name, r in filter_["rules"].items()],
    )
    lines += [
        "",
        "## SFT",
        "",
        f"{sft['steps']} steps ({sft['epochs']} epochs) on {sft['rows']} rows; loss {_fmt(sft['loss_first_window'])} "
        f"(first {sft['window_steps']} steps) → {_fmt(sft['loss_last_window'])} (last {sft['window_steps']}); "
        f"{sft['skipped_rows']} rows skipped.",
        "",
    ]
    lines += [
        "",
        "## RL (" + ("T-GRPO" if rl.get("temporal") else "GRPO") + ")",
        "",
        f"{rl['steps']} steps. Mean over the first and last {rl['window_steps']} steps:",
        "",
    ]
    lines += _table(
        ["", "first", "last"],
        [
            (k, _fmt(rl.get(f"{k}_first_window")), _fmt(rl.get(f"{k}_last_window")))
            for k in ("reward", "accuracy", "completion_length")
        ],
    )
    lines += [
        "",
        f"Temporal bonus given in {_fmt(rl.get('temporal_fired_share'))} of video groups; "
        f"KL (last window) {_fmt(rl.get('kl_last_window'), 4)}.",
        "",
    ]
    if figures:
        lines += ["## Curves", ""] + [f"![{caption}]({path})" for caption, path in figures.items()] + [""]
    lines += [
        "## Evaluation",
        "",
        eval_table.split("\n", 1)[1].strip() if eval_table.startswith("#") else eval_table.strip(),
        "",
    ]
    return "\n".join(lines) + "\n"
