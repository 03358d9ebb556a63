"""The ``videor1`` command.

    videor1 score PREDICTIONS.jsonl [...]   score model outputs with the benchmark rules of spec section 6
    videor1 plan [--gpus 8 --gpu-gb 80]      per-GPU memory of the paper profile's SFT and RL phases, and whether they fit

A predictions file holds one JSON object per line with ``problem_type``,
``solution`` and ``output`` (``output`` null or absent, with an optional
``error``, marks a row the model never answered). Rows are grouped by their
``benchmark`` field, else by ``--benchmark``, else by the file name up to "@"
(the eval stage writes ``<benchmark>@<frames>.jsonl``).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .eval.summary import summarize


def _read_predictions(path: Path) -> list[dict]:
    rows = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{n}: not JSON ({err.msg})") from err
            missing = [k for k in ("problem_type", "solution") if k not in row]
            if missing:
                raise ValueError(f"{path}:{n}: missing {', '.join(missing)}")
            rows.append(row)
    return rows


def _pct(x: float | None) -> str:
    return "—" if x is None else f"{100 * x:.1f}"


def score_command(args: argparse.Namespace) -> int:
    groups: dict[str, list[dict]] = defaultdict(list)
    for path in args.predictions:
        try:
            rows = _read_predictions(Path(path))
        except (OSError, ValueError) as err:
            print(f"videor1 score: {err}", file=sys.stderr)
            return 2
        default = args.benchmark or Path(path).stem.split("@")[0]
        for row in rows:
            groups[str(row.get("benchmark") or default)].append(row)
    task_averaged = True if args.task_average else None
    summaries = [
        summarize(b, rows, task_field=args.task_field, task_averaged=task_averaged, mra=args.mra)
        for b, rows in groups.items()
    ]
    if args.json:
        print(json.dumps([s.to_dict() for s in summaries], indent=1))
        return 0
    table = Table(title="scores (%)")
    for col in ("benchmark", "rows", "scored", "no output", "accuracy", "MRA", "score", "score, no output = wrong"):
        table.add_column(col, justify="left" if col == "benchmark" else "right")
    for s in summaries:
        table.add_row(
            s.benchmark,
            str(s.rows),
            str(s.scored),
            str(len(s.failed)),
            _pct(s.accuracy),
            _pct(s.mra),
            _pct(s.score),
            _pct(s.score_failed_as_wrong),
        )
    console = Console()
    console.print(table)
    for s in summaries:
        if s.tasks:
            console.print(f"{s.benchmark} tasks: " + ", ".join(f"{t} {_pct(v)}" for t, v in s.tasks.items()))
        for f in s.failed:
            console.print(f"{s.benchmark}: problem {f['problem_id']} has no output: {f['error']}")
        for f in s.unscorable:
            console.print(f"{s.benchmark}: problem {f['problem_id']} can never score (data error): {f['error']}")
    return 0


FAMILY_CONFIGS = {"qwen2_5_vl": "qwen2_5_vl_7b.json", "qwen3_vl": "qwen3_vl_8b.json"}  # videor1/configs/


def family_config(params: dict, profile: str) -> Path:
    """The paper-scale architecture of the profile's ``base_model.family`` (Qwen2.5-VL-7B, Qwen3-VL-8B)."""
    family = params[profile].get("base_model", {}).get("family", "qwen2_5_vl")
    if family not in FAMILY_CONFIGS:
        raise SystemExit(f"plan: no paper-scale config for family {family}: pass --config a config.json")
    return Path(__file__).parent / "configs" / FAMILY_CONFIGS[family]


def plan_command(args: argparse.Namespace) -> int:
    import yaml

    from .plan import FULL_GATHER, HEADROOM, START_UP, SYNC, TRAIN_STEP, ModelShape, describe, plan_memory, profile_runs

    params = yaml.safe_load(Path(args.params).read_text())
    args.config = args.config or family_config(params, args.profile)
    model = ModelShape.from_file(args.config)
    runs = profile_runs(
        params,
        args.profile,
        sharding=args.sharding,
        gradient_checkpointing=False if args.no_checkpointing else None,
        patch=model.patch,
    )
    plans = {stage: plan_memory(model, run, args.gpus, args.gpu_gb) for stage, run in runs.items()}
    ok = all(p.fits and p.vllm_fits for p in plans.values())
    if args.json:
        print(
            json.dumps(
                {
                    "params": model.params,
                    "root_params": model.root_params,
                    **{k: describe(v) for k, v in plans.items()},
                },
                indent=1,
            )
        )
        return 0 if ok else 1
    console = Console(
        width=max(Console().width, 132)
    )  # the phase table, unsqueezed (a pipe or a log gets 80 otherwise)
    rl_run = runs["rl"]
    checkpointing = ", ".join(f"{s} {'on' if r.gradient_checkpointing else 'off'}" for s, r in runs.items())
    engine = (
        f"vLLM {rl_run.vllm_share:g} of the GPU, sleep mode {'on' if rl_run.vllm_sleep else 'off'}, "
        f"sync buckets {rl_run.sync_bucket_mb} MiB"
        if rl_run.vllm_share
        else "no vLLM engine"
    )
    console.print(
        f"{Path(args.config).name}: {model.params / 1e9:.2f}B parameters "
        f"({model.vision_params / 1e9:.2f}B vision, "
        f"{model.root_params / 1e9:.2f}B in FSDP's root unit); {args.gpus} × {args.gpu_gb:g} GiB, sharding "
        f"{args.sharding}, gradient checkpointing {checkpointing}; rl: {engine}"
    )
    columns = [
        (stage, name, terms) for stage, p in plans.items() for name, terms in {**p.phases, **p.comparison}.items()
    ]
    short = {TRAIN_STEP: "train", SYNC: "sync", FULL_GATHER: "sync, old full gather"}
    table = Table(
        title=f"per-GPU memory, profile {args.profile} (GiB)",
        caption=f"a stage fits when its largest phase stays below {100 * (1 - HEADROOM):g} % of the GPU; "
        f"margin: what is left below that line; the old full gather is shown for comparison only",
    )
    table.add_column("term")
    for stage, name, _ in columns:
        table.add_column(
            stage if len(plans[stage].phases) == 1 else f"{stage} {short.get(name, name)}", justify="right"
        )
    terms = list(dict.fromkeys(t for _, _, c in columns for t in c))
    for term in terms:
        table.add_row(term, *(f"{c[term]:.1f}" if term in c else "" for _, _, c in columns))
    totals = [sum(c.values()) for _, _, c in columns]
    table.add_row("total", *(f"{x:.1f}" for x in totals))
    table.add_row("margin (GiB left)", *(f"{plans[s].margin(x):.1f}" for (s, _, _), x in zip(columns, totals)))
    table.add_row("fits", *("yes" if plans[s].margin(x) >= 0 else "NO" for (s, _, _), x in zip(columns, totals)))
    console.print(table)
    rl = plans["rl"]
    if START_UP in rl.phases:
        others = rl.host_gb.get("start-up, each other rank")
        console.print(
            f"start-up peak: {rl.totals[START_UP]:.1f} GiB per GPU; host RAM "
            f"{rl.host_gb['start-up, rank 0 (the checkpoint)']:.1f} GiB on rank 0 (the checkpoint)"
            + ("" if others is None else f", {others:.1f} on each other rank")
        )
    if SYNC in rl.phases:
        console.print(
            f"weight sync peak: {rl.totals[SYNC]:.1f} GiB per GPU streamed in {rl_run.sync_bucket_mb} MiB buckets "
            f"({rl.totals[FULL_GATHER]:.1f} with every parameter gathered at once, the old way)"
        )
    for k, v in rl.host_gb.items():
        if not k.startswith("start-up"):
            console.print(f"host RAM, {k}: {v:.1f} GiB")
    if rl.vllm:
        v = rl.vllm
        console.print(
            f"inside vLLM's {v['budget_gb']:.1f} GiB: weights {v['weights_gb']:.1f}, profile run and CUDA graphs "
            f"~{v['allowance_gb']:.1f}, KV cache {v['kv_cache_gb']:.1f} ({v['kv_tokens']:,} tokens; max_model_len "
            f"{v['max_model_len']:,}, a step's {v['rollout_sequences']} sequences per rank "
            f"{v['rollout_tokens']:,})"
            + (
                ""
                if rl.vllm_fits
                else ": does NOT hold one max_model_len sequence or the profile's prompt + completion"
            )
        )
    for stage, p in plans.items():
        console.print(
            f"{stage}: peak {p.peak_phase} {p.total_gb:.1f} GiB, margin {p.margin_gb:.1f} GiB "
            f"({'fits' if p.fits else 'does NOT fit'} {args.gpus} × {args.gpu_gb:g} GiB)"
        )
    return 0 if ok else 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="videor1", description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    score = sub.add_parser("score", help="score a predictions JSONL file with the benchmark rules (spec section 6)")
    score.add_argument("predictions", nargs="+", help="JSONL files of rows with problem_type, solution, output")
    score.add_argument("--benchmark", help="benchmark name for rows without a 'benchmark' field")
    score.add_argument(
        "--task-field", default="data_source", help="field naming a row's task (VSI-Bench averages tasks)"
    )
    score.add_argument(
        "--task-average", action="store_true", help="average task scores for every benchmark, not only VSI-Bench"
    )
    score.add_argument(
        "--mra",
        choices=["exact", "float32"],
        default="exact",
        help="MRA rule: exact (the spec) or float32 (the public eval script; docs/eval-protocol.md)",
    )
    score.add_argument("--json", action="store_true", help="print the summaries as JSON")
    plan = sub.add_parser(
        "plan", help="per-GPU memory of a profile's SFT and RL on N GPUs of M GiB (exit 1: does not fit)"
    )
    plan.add_argument("--profile", default="paper")
    plan.add_argument("--params", default="params.yaml")
    plan.add_argument(
        "--config",
        default=None,
        help="a model's config.json (default: the profile's family's paper-scale architecture, videor1/configs/)",
    )
    plan.add_argument("--gpus", type=int, default=8)
    plan.add_argument("--gpu-gb", type=float, default=80.0)
    plan.add_argument("--sharding", choices=["full", "zero2", "none"], default="full")
    plan.add_argument(
        "--no-checkpointing",
        action="store_true",
        help="plan without gradient checkpointing (default: each stage's train.gradient_checkpointing)",
    )
    plan.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    return score_command(args) if args.command == "score" else plan_command(args)


if __name__ == "__main__":
    sys.exit(main())
