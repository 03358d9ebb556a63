"""Rule-based filtering of teacher CoT (spec section 1): keep a row only when every rule passes.

Rules, in the order removals are attributed (a row failing several counts once,
under its first failing rule, and also in each rule's own "failed" count):

- ``format``: exactly one ``<think>…</think>`` and one ``<answer>…</answer>``, in that
  order, nothing else around them (and the spec's format reward is 1);
- ``option_letter``: a multiple-choice answer is one of the offered letters;
- ``numeric``: a numerical or regression answer parses as a number;
- ``accuracy``: the teacher's answer scores > ``min_accuracy`` with the training
  accuracy reward (the public code's 0.6);
- ``length``: the rationale has between ``min_words`` and ``max_words`` words;
- ``repetition``: at most ``max_repeated_ngram_share`` of the rationale's word
  n-grams are repeats (a looping rationale repeats most of them).

A threshold set to null switches its rule off.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from ..params.check import at_least, between, require
from ..rewards import accuracy_reward, extract_answer, format_reward, parse_number

THINK = re.compile(r"<think>(.*?)</think>", re.DOTALL)


@dataclass(frozen=True)
class FilterConfig:
    min_accuracy: float | None = 0.6
    min_words: int | None = 10
    max_words: int | None = 400
    repeat_ngram: int = 4
    max_repeated_ngram_share: float | None = 0.3
    check_format: bool = True
    check_option_letter: bool = True
    check_numeric: bool = True

    def __post_init__(self):
        between(self, 0.0, 1.0, "min_accuracy", "max_repeated_ngram_share")
        at_least(self, 0, "min_words", "max_words")
        at_least(self, 1, "repeat_ngram")
        if self.min_words is not None and self.max_words is not None:
            require(
                self.min_words <= self.max_words,
                "max_words",
                f"must be >= min_words ({self.min_words}), got {self.max_words}",
            )


def think_text(completion: str) -> str:
    match = THINK.search(completion)
    return match.group(1).strip() if match else ""


def well_formed(completion: str) -> bool:
    counts = [completion.count(tag) for tag in ("<think>", "</think>", "<answer>", "</answer>")]
    return counts == [1, 1, 1, 1] and format_reward(completion.strip()) == 1.0


def repeated_ngram_share(text: str, n: int) -> float:
    """Share of the word n-grams that repeat an earlier one: (all − distinct) / all; 0 for fewer than n words."""
    words = text.split()
    total = len(words) - n + 1
    if total <= 0:
        return 0.0
    return (total - len(set(zip(*(words[i:] for i in range(n)))))) / total


def _letters(options: list[str]) -> set[str]:
    return {o.split(".", 1)[0].strip() for o in options or []}


def rules(cfg: FilterConfig) -> dict[str, Callable[[dict], bool]]:
    """Rule name -> predicate on a row with ``completion``; True means the row passes."""
    out: dict[str, Callable[[dict], bool]] = {}
    if cfg.check_format:
        out["format"] = lambda r: well_formed(r["completion"])
    if cfg.check_option_letter:
        out["option_letter"] = lambda r: (
            r["problem_type"] != "multiple choice" or (extract_answer(r["completion"]) or "") in _letters(r["options"])
        )
    if cfg.check_numeric:
        out["numeric"] = lambda r: (
            r["problem_type"] not in ("numerical", "regression")
            or parse_number(extract_answer(r["completion"]) or "") is not None
        )
    if cfg.min_accuracy is not None:
        out["accuracy"] = (
            lambda r: accuracy_reward(r["completion"], r["solution"], r["problem_type"]) > cfg.min_accuracy
        )
    if cfg.min_words is not None or cfg.max_words is not None:
        lo, hi = cfg.min_words or 0, cfg.max_words if cfg.max_words is not None else float("inf")
        out["length"] = lambda r: lo <= len(think_text(r["completion"]).split()) <= hi
    if cfg.max_repeated_ngram_share is not None:
        out["repetition"] = (
            lambda r: repeated_ngram_share(think_text(r["completion"]), cfg.repeat_ngram)
            <= cfg.max_repeated_ngram_share
        )
    return out


@dataclass
class FilterResult:
    kept: list[dict]  # rows with process (the think block) and teacher_answer added
    metrics: dict


def _example(row: dict) -> dict:
    text = row["completion"]
    return {
        "problem_id": row["problem_id"],
        "data_source": row["data_source"],
        "completion": text if len(text) <= 240 else text[:240] + "…",
    }


def apply_filter(rows: list[dict], cfg: FilterConfig, *, examples: int = 3) -> FilterResult:
    checks = rules(cfg)
    failed = Counter()
    first = Counter()
    samples: dict[str, list[dict]] = {name: [] for name in checks}
    spoil_by_rule: dict[str, Counter] = {name: Counter() for name in checks}
    kept = []
    for row in rows:
        fails = [name for name, passes in checks.items() if not passes(row)]
        for name in fails:
            failed[name] += 1
        if fails:
            first[fails[0]] += 1
            spoil_by_rule[fails[0]][str(row.get("teacher_spoil"))] += 1
            if len(samples[fails[0]]) < examples:
                samples[fails[0]].append(_example(row))
            continue
        kept.append(
            {
                **row,
                "process": f"<think>{think_text(row['completion'])}</think>",
                "teacher_answer": extract_answer(row["completion"]),
            }
        )
    metrics = {
        "rows_in": len(rows),
        "kept": len(kept),
        "kept_share": round(len(kept) / len(rows), 4) if rows else None,
        "rules": {name: {"removed": first[name], "failed": failed[name], "examples": samples[name]} for name in checks},
    }
    if any("teacher_spoil" in r for r in rows):  # the scripted teacher says what it spoiled: show who caught it
        metrics["removed_by_spoil"] = {name: dict(c) for name, c in spoil_by_rule.items()}
    return FilterResult(kept, metrics)
