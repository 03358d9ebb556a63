"""The training accuracy reward of spec section 3, in [0, 1], for the five problem types.

Every function here returns a float for any input and never raises: text the
rule cannot read scores 0. WER comes from jiwer and ROUGE from rouge-score; the
edge cases their definitions leave open are settled here and tested.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import jiwer
from nltk.stem import porter
from rouge_score import rouge_scorer, tokenize, tokenizers

from .answer import extract_answer, parse_number, solution_answer


def _clip(x: float) -> float:
    return min(1.0, max(0.0, float(x)))


def multiple_choice_reward(pred: str, gt: str) -> float:
    """1 when the answer equals the solution's letter after trimming."""
    return 1.0 if pred.strip() == gt.strip() else 0.0


def numerical_reward(pred: str, gt: str) -> float:
    """Equal after rounding to 2 decimals; 0 when exactly one side is written with "." or ","."""
    pred_decimal = "." in pred or "," in pred
    gt_decimal = "." in gt or "," in gt
    if pred_decimal != gt_decimal:
        return 0.0
    p, g = parse_number(pred), parse_number(gt)
    if p is None or g is None:
        return 0.0
    return 1.0 if round(p, 2) == round(g, 2) else 0.0


def word_error_rate(reference: str, hypothesis: str) -> float:
    """Word-level edit distance / number of reference words (words split on any whitespace).

    An empty reference has no words to divide by: the rate is 0 for an empty
    hypothesis and the number of hypothesis words otherwise (as dividing by
    max(1, 0) gives), so OCR reward is 1 or 0 there.
    """
    ref, hyp = reference.split(), hypothesis.split()
    if not ref:
        return float(len(hyp))
    if not hyp:
        return 1.0
    return float(jiwer.wer(" ".join(ref), " ".join(hyp)))


def ocr_reward(pred: str, gt: str) -> float:
    """1 − WER, clipped to [0, 1]. Case and punctuation count."""
    return _clip(1.0 - word_error_rate(gt, pred))


class _CachedStemmer:
    """rouge-score's Porter stemmer with a memo: stemming is 80 % of a ROUGE call and words repeat a lot
    (the filter's 39k free-form rows: 420 -> 130 µs a row). Same stems, so the same scores."""

    def __init__(self):
        self.stem = lru_cache(maxsize=1 << 16)(porter.PorterStemmer().stem)


class _StemmingTokenizer(tokenizers.Tokenizer):
    """rouge-score's default tokenizer (lower-case, [a-z0-9] words, stem words over 3 letters), cached stems."""

    def __init__(self):
        self._stemmer = _CachedStemmer()

    def tokenize(self, text):
        return tokenize.tokenize(text, self._stemmer)


@lru_cache(maxsize=1)
def _rouge() -> rouge_scorer.RougeScorer:
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], tokenizer=_StemmingTokenizer())


def rouge_mean_f(reference: str, hypothesis: str) -> float:
    """Mean of ROUGE-1, ROUGE-2 and ROUGE-L F-measures with Porter stemming.

    rouge-score lower-cases and keeps only [a-z0-9] words, so case and punctuation
    do not count; text with no such words (empty, or non-Latin script) scores 0.
    """
    scores = _rouge().score(reference, hypothesis)
    return (scores["rouge1"].fmeasure + scores["rouge2"].fmeasure + scores["rougeL"].fmeasure) / 3


def free_form_reward(pred: str, gt: str) -> float:
    return _clip(rouge_mean_f(gt, pred))


def regression_reward(pred: str, gt: str) -> float:
    """1 − min(1, (|pred − gt| + 1e-9) / (|gt| + 1e-9)); unparsable gives 0."""
    p, g = parse_number(pred), parse_number(gt)
    if p is None or g is None:
        return 0.0
    relative = (abs(p - g) + 1e-9) / (abs(g) + 1e-9)
    return _clip(1.0 - min(1.0, relative))


REWARD_BY_TYPE = {
    "multiple choice": multiple_choice_reward,
    "numerical": numerical_reward,
    "OCR": ocr_reward,
    "free-form": free_form_reward,
    "regression": regression_reward,
}


def score_answer(pred: str, solution: str, problem_type: str) -> float:
    """The type's rule applied to an already extracted answer (shared with benchmark scoring)."""
    rule = REWARD_BY_TYPE.get(problem_type)
    if rule is None or not isinstance(pred, str) or not isinstance(solution, str):
        return 0.0
    try:
        return rule(pred, solution_answer(solution))
    except Exception:  # a reward never raises (spec section 3); the rules above are total, this is a guard
        return 0.0


def accuracy_reward(completion: str, solution: str, problem_type: str) -> float:
    """The training accuracy reward: the first answer tag's text scored by the type's rule.

    A completion without an answer tag scores 0; so does an unknown problem type.
    """
    pred = extract_answer(completion)
    if pred is None:
        return 0.0
    return score_answer(pred, solution, problem_type)


def accuracy_rewards(completions: Sequence[str], solution: str, problem_type: str) -> list[float]:
    """``accuracy_reward`` for every completion of one group (one prompt, one solution)."""
    return [accuracy_reward(c, solution, problem_type) for c in completions]
