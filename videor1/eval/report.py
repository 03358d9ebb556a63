"""The eval report: one Markdown row per model and frame count, the paper's numbers beside ours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from .paper import BENCHMARKS, paper_score


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{x:.1f}"


def _cell(ours: Mapping | None, paper: float | None) -> str:
    if ours is None:
        return "—"
    if ours.get("missing"):
        return "missing"
    text = _pct(ours.get("score"))
    if ours.get("failed"):
        text += f"†{ours['failed']}"
    return f"{text} ({_pct(paper)})" if paper is not None else text


def _protocol(evaluation: Mapping) -> str:
    return (evaluation.get("protocol") or {}).get("label", "unrecorded")


def render_eval_report(
    evals: Sequence[Mapping],
    *,
    paper_models: Mapping[str, str] | None = None,
    paper_frames: Mapping[int, int] | None = None,
    title: str = "Evaluation",
    notes: Sequence[str] = (),
) -> str:
    """Markdown for a list of ``metrics/eval_<model>.json`` documents.

    ``paper_models`` maps our model name (base, sft, rl, …) to a row of the paper's
    table; ``paper_frames`` maps our frame count to the paper's frame count to put
    beside it (identity when absent). A cell reads ``ours (paper)``; ``†n`` marks
    n rows without an output (unreadable media), which are listed below the table.
    """
    paper_models = paper_models or {}
    paper_frames = paper_frames or {}
    benches = list(BENCHMARKS)
    extra = sorted(
        {b for e in evals for per in e["frames"].values() for b in per if b not in BENCHMARKS and b != "mean"}
    )
    benches += extra
    head = ["model", "protocol", "frames", "paper row"] + [BENCHMARKS.get(b, b) for b in benches] + ["mean"]
    lines = [f"# {title}", "", "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    failures, unscorable, missing, vsi = [], [], [], []
    labels = list(dict.fromkeys(_protocol(e) for e in evals))  # each distinct label once, numbered below the table
    for e in evals:
        model = e["model"]
        label = _protocol(e)
        protocol = f"{label.split(',')[0]} [{labels.index(label) + 1}]"
        paper_model = paper_models.get(model)
        for frames_key in sorted(e["frames"], key=int):
            frames = int(frames_key)
            per = e["frames"][frames_key]
            pf = paper_frames.get(frames, frames)
            row_label = (
                f"{paper_model} @ {pf}" if paper_model and paper_score(paper_model, pf, "mvbench") is not None else "—"
            )
            cells = [_cell(per.get(b), paper_score(paper_model, pf, b)) for b in benches]
            lines.append(
                "| " + " | ".join([model, protocol, str(frames), row_label, *cells, _pct(per.get("mean"))]) + " |"
            )
            for b in benches:
                entry = per.get(b) or {}
                where = f"{model} @ {frames} frames, {BENCHMARKS.get(b, b)}"
                for f in entry.get("failed_rows", []):
                    failures.append(f"- {where}, problem {f['problem_id']}: {f['error']}")
                for f in entry.get("unscorable_rows", []):
                    unscorable.append(f"- {where}, problem {f['problem_id']}: {f['error']}")
                if entry.get("missing"):
                    missing.append(f"- {where}: {entry['missing']}")
            if per.get("vsibench") and not per["vsibench"].get("missing"):
                v = per["vsibench"]
                vsi.append(
                    f"| {model} | {protocol} | {frames} | {_pct(v.get('score'))} ({len(v.get('tasks') or {})}) | "
                    f"{_pct(v.get('accuracy'))} | {_pct(v.get('mra'))} |"
                )
    lines += [
        "",
        "Scores are % (accuracy; MRA for regression rows; VSI-Bench: the mean of its task scores). "
        "In parentheses: the paper's number for the row named in *paper row*, made with the public eval "
        "script (protocol `reference`, docs/eval-protocol.md).",
    ]
    lines += ["", "Protocols (docs/eval-protocol.md; overrides named):"] + [
        f"[{k}] {label}" for k, label in enumerate(labels, 1)
    ]
    if len(labels) > 1:
        lines += [
            "",
            f"**These rows were evaluated under {len(labels)} different protocols: compare numbers only "
            "within one protocol.**",
        ]
    lines += [f"{n}" for n in notes]
    if vsi:
        lines += [
            "",
            "## VSI-Bench both ways",
            "",
            "Task-averaged (VSI-Bench's own code, the headline above) and the public eval script's pair: "
            "accuracy over the non-regression rows and MRA over the regression rows. The paper does not say "
            "how it combined the pair into one number. In parentheses: how many tasks the average is over (the "
            "values of `task_field`; one task means the file does not name them).",
            "",
            "| model | protocol | frames | task-averaged (tasks) | accuracy (non-regression) | MRA (regression) |",
            "|---|---|---|---|---|---|",
            *vsi,
        ]
    if missing:
        lines += ["", f"## Missing benchmarks ({len(missing)})", "", *missing]
    if unscorable:
        lines += [
            "",
            f"## Rows that can never score ({len(unscorable)})",
            "",
            "Data errors (a numerical or regression solution that is not a number): listed, not scored.",
            "",
            *unscorable,
        ]
    if failures:
        lines += [
            "",
            f"## Rows without an output ({len(failures)})",
            "",
            "These rows are excluded from the score in the table (†n counts them); "
            "`score_failed_as_wrong` in the metrics counts them as wrong.",
            "",
            *failures,
        ]
    return "\n".join(lines) + "\n"
