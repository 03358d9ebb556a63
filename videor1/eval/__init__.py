"""Evaluation: benchmark scoring (spec section 6), summaries, the resumable runner, the report."""

from ..store import ResultStore
from .paper import BENCHMARKS, PAPER, paper_score
from .report import render_eval_report
from .runner import EvalRun, evaluate_rows, run_fingerprint
from .scoring import MRA_THRESHOLDS, mean_relative_accuracy, output_answer, score_prediction
from .summary import BenchmarkSummary, benchmark_key, summarize

__all__ = [
    "BENCHMARKS",
    "BenchmarkSummary",
    "EvalRun",
    "MRA_THRESHOLDS",
    "PAPER",
    "ResultStore",
    "benchmark_key",
    "evaluate_rows",
    "mean_relative_accuracy",
    "output_answer",
    "paper_score",
    "render_eval_report",
    "run_fingerprint",
    "score_prediction",
    "summarize",
]
