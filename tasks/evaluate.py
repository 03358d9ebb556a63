"""DVC stage `evaluate@<model>`: one model on the six benchmark files at each frame count, under one protocol.

    python -m tasks.evaluate base      # models/base -> data/eval/base/, metrics/eval_base.json
    python -m tasks.evaluate grpo-1 --model-dir runs/grpo-1/model --results runs/grpo-1/eval \
        --metrics runs/grpo-1/eval.json  # any model directory, outputs where an experiment keeps them

The protocol (``eval.protocol``: reference | paper | spec, docs/eval-protocol.md) fixes the prompt wording,
decoding, pixel and frame rules and MRA; its label goes into the metrics beside every number. Videos are
decoded once for all frame counts into the frame cache, which the other models' stages reuse. Per
(benchmark, frames) the per-row outputs go to data/eval/<model>/<benchmark>@<frames>.jsonl as they are
produced; a killed run resumes without regenerating finished rows. A missing benchmark file is reported as
missing, and the other benchmarks run.

``eval.nproc: N`` runs N engines, one per GPU (``tensor_parallel_size`` GPUs each; on CPU, N processes), as
independent worker processes sharing the (benchmark, frames, batch) work (videor1/eval/parallel.py): each appends
to its own part file, merged into the outputs in row order when they are done, so the outputs equal a
one-process run's row by row, and a kill -9 of any of them resumes with only the missing batches.
The work itself: videor1/eval/suite.py.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from videor1.eval.suite import Benchmarks, EvalIncomplete, ModelEvaluation, score_lines
from videor1.io import write_json, write_run_record
from videor1.models import check_model_dir

from .params import config, set_threads


def parse_args(argv: list[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(prog="python -m tasks.evaluate", description="one model on the eval files")
    ap.add_argument("model", help="its name: models/MODEL unless --model-dir")
    ap.add_argument("--model-dir", type=Path, help="the model directory (default models/MODEL)")
    ap.add_argument("--results", type=Path, help="per-row outputs (default data/eval/MODEL)")
    ap.add_argument("--metrics", type=Path, help="the metrics file (default metrics/eval_MODEL.json)")
    args = ap.parse_args(argv)
    args.model_dir = args.model_dir or Path("models") / args.model
    args.results = args.results or Path("data/eval") / args.model
    args.metrics = args.metrics or Path("metrics") / f"eval_{args.model}.json"
    return args


def main(argv: list[str]) -> None:
    args = parse_args(argv)
    cfg = config("eval", model_dir=args.model_dir, name="evaluate")
    set_threads(cfg.threads)
    try:
        model_dir = check_model_dir(args.model_dir)
    except FileNotFoundError as err:
        sys.exit(f"evaluate: {err}")
    benchmarks = Benchmarks.read(cfg.benchmarks_dir, cfg.benchmarks)
    for bench, reason in benchmarks.missing.items():
        print(f"evaluate: {bench}: {reason}; the other benchmarks run", file=sys.stderr)
    if not benchmarks.rows:
        sys.exit(f"evaluate: no benchmark file found under {benchmarks.root} (eval.benchmarks_dir in params.yaml)")
    evaluation = ModelEvaluation(cfg, model_dir, benchmarks, args.results)
    with tqdm(total=benchmarks.total(cfg.frames), desc=f"eval {args.model}", unit="row", dynamic_ncols=True) as bar:
        try:
            done = evaluation.run(args.model, on_progress=bar.update)
        except EvalIncomplete as err:  # a worker died: the next run generates only the missing rows
            for line in err.failures:
                print(f"evaluate: {line}", file=sys.stderr)
            sys.exit(f"evaluate: {err}")
    write_json(args.metrics, done.metrics)
    write_run_record(f"evaluate@{args.model}", done.run)
    for line in score_lines(done.metrics, evaluation.protocol.label):
        print(line)


if __name__ == "__main__":
    main(sys.argv[1:])
