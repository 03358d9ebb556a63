"""Rewards of spec section 3 on hand-worked cases, malformed outputs included."""

from __future__ import annotations

import pytest

from videor1.rewards import (
    accuracy_reward,
    accuracy_rewards,
    extract_answer,
    format_reward,
    format_rewards,
    parse_number,
    rouge_mean_f,
    word_error_rate,
)

MC, NUM, OCR, FREE, REG = "multiple choice", "numerical", "OCR", "free-form", "regression"


def wrap(answer: str) -> str:
    return f"<think>reasoning</think><answer>{answer}</answer>"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("<answer> B </answer>", "B"),
        ("<answer>\nB\n</answer>", "B"),
        ("no tags at all", None),
        ("<answer>B", None),  # unclosed
        ("<answer>A</answer> then <answer>B</answer>", "A"),  # the first tag wins
        ("<answer><answer>A</answer></answer>", "<answer>A"),  # nested: non-greedy up to the first close
        ("<answer></answer>", ""),
        (None, None),
    ],
)
def test_extract_answer(text, expected):
    assert extract_answer(text) == expected


@pytest.mark.parametrize(
    "text, value",
    [
        ("3", 3.0),
        ("-2.5", -2.5),
        ("1,234.5", 1234.5),
        (" 7 ", 7.0),
        ("1e3", 1000.0),
        (".5", 0.5),
        ("3.", 3.0),
        ("nan", None),
        ("inf", None),
        ("1e999", None),
        ("three", None),
        ("3 apples", None),
        ("", None),
        ("1/2", None),
    ],
)
def test_parse_number(text, value):
    assert parse_number(text) == value


class TestMultipleChoice:
    @pytest.mark.parametrize(
        "completion, reward",
        [
            (wrap("B"), 1.0),
            (wrap(" B "), 1.0),  # trimmed
            (wrap("b"), 0.0),  # exact letter, case counts
            (wrap("B. right"), 0.0),  # the letter only
            (wrap("A"), 0.0),
            ("B", 0.0),  # no answer tag: the training reward reads only the tag
            ("<answer>B</answer><answer>A</answer>", 1.0),  # first tag
            ("<answer>A</answer><answer>B</answer>", 0.0),
            ("<answer><answer>B</answer></answer>", 0.0),  # nested: reads "<answer>B"
            ("", 0.0),
        ],
    )
    def test_cases(self, completion, reward):
        assert accuracy_reward(completion, "<answer>B</answer>", MC) == reward


class TestNumerical:
    @pytest.mark.parametrize(
        "pred, gt, reward",
        [
            ("3", "3", 1.0),
            ("3", "3.0", 0.0),  # exactly one side written with a decimal point
            ("3.0", "3", 0.0),
            ("3.0", "3.00", 1.0),
            ("3.004", "3.001", 1.0),  # equal after rounding to 2 decimals
            ("3.01", "3.02", 0.0),
            ("1,000", "1000", 0.0),  # a comma counts as a decimal mark for the rule
            ("1,000", "1,000.0", 1.0),
            ("1,000", "1000.0", 1.0),  # both have a mark; commas removed before parsing
            ("-4", "-4", 1.0),
            ("4", "-4", 0.0),
            ("0", "0", 1.0),
            ("-0", "0", 1.0),
            ("four", "4", 0.0),  # non-numeric
            ("", "4", 0.0),
            ("nan", "4", 0.0),
        ],
    )
    def test_cases(self, pred, gt, reward):
        assert accuracy_reward(wrap(pred), f"<answer>{gt}</answer>", NUM) == reward


class TestOCR:
    def test_exact(self):
        assert accuracy_reward(wrap("HELLO WORLD"), "<answer>HELLO WORLD</answer>", OCR) == 1.0

    def test_one_substitution_in_three_words(self):
        assert accuracy_reward(wrap("a b d"), "<answer>a b c</answer>", OCR) == pytest.approx(2 / 3)

    def test_case_and_punctuation_count(self):
        assert accuracy_reward(wrap("hello world"), "<answer>Hello, world</answer>", OCR) == pytest.approx(0.5)

    def test_whitespace_of_any_kind_separates_words(self):
        assert word_error_rate("a b", "a\nb") == 0.0
        assert accuracy_reward(wrap("  a\t b "), "<answer>a b</answer>", OCR) == 1.0

    def test_clipped_at_zero(self):  # 2 reference words, 5 hypothesis words: WER 1.5
        assert word_error_rate("a b", "a b c d e") == 1.5
        assert accuracy_reward(wrap("a b c d e"), "<answer>a b</answer>", OCR) == 0.0

    def test_empty_hypothesis(self):
        assert accuracy_reward(wrap(""), "<answer>a b</answer>", OCR) == 0.0

    def test_empty_reference(self):
        assert accuracy_reward(wrap(""), "<answer></answer>", OCR) == 1.0
        assert accuracy_reward(wrap("x"), "<answer></answer>", OCR) == 0.0

    def test_no_tag(self):
        assert accuracy_reward("HELLO", "<answer>HELLO</answer>", OCR) == 0.0


class TestFreeForm:
    def test_identical(self):
        assert accuracy_reward(wrap("a red circle"), "<answer>a red circle</answer>", FREE) == pytest.approx(1.0)

    def test_stemming_case_and_punctuation_ignored(self):
        assert rouge_mean_f("the cats run", "The cat running!") == pytest.approx(1.0)

    def test_hand_worked_partial(self):
        # ref "a red circle", pred "a blue circle": unigrams 2/3 -> F1 2/3; bigrams 0/2 -> 0; LCS "a circle" 2/3.
        assert rouge_mean_f("a red circle", "a blue circle") == pytest.approx((2 / 3 + 0 + 2 / 3) / 3)

    @pytest.mark.parametrize("pred, gt", [("", "a b"), ("a b", ""), ("", ""), ("日本語", "日本語")])
    def test_empty_or_no_latin_words_scores_zero(self, pred, gt):
        assert accuracy_reward(wrap(pred), f"<answer>{gt}</answer>", FREE) == 0.0


def test_rouge_equals_rouge_score_reference():
    import random

    from rouge_score import rouge_scorer

    reference = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=True)
    words = "The running cats quickly jumped, over lazy dogs! singing happily across meadows 42 rivers".split()
    rng = random.Random(0)
    for _ in range(300):
        a, b = (" ".join(rng.choices(words, k=rng.randint(0, 20))) for _ in range(2))
        s = reference.score(a, b)
        assert rouge_mean_f(a, b) == (s["rouge1"].fmeasure + s["rouge2"].fmeasure + s["rougeL"].fmeasure) / 3


class TestRegression:
    @pytest.mark.parametrize(
        "pred, gt, reward",
        [
            ("10", "10", 1.0),
            ("9", "10", 0.9),
            ("12.5", "10", 0.75),
            ("25", "10", 0.0),  # relative error clipped at 1
            ("-5", "-10", 0.5),  # negative ground truth: |gt| in the denominator
            ("1", "0", 0.0),
            ("1,000", "1000", 1.0),
            ("ten", "10", 0.0),
            ("nan", "10", 0.0),  # float("nan") parses in Python; a reward must not give it credit
            ("inf", "10", 0.0),
        ],
    )
    def test_cases(self, pred, gt, reward):
        assert accuracy_reward(wrap(pred), f"<answer>{gt}</answer>", REG) == pytest.approx(reward)

    def test_zero_ground_truth_follows_the_formula(self):
        # 1 - min(1, (|0 - 0| + 1e-9) / (|0| + 1e-9)) = 0: in training an exact zero earns nothing, as in the
        # public code. Benchmark scoring (MRA) treats it as exact instead (tests/test_scoring.py).
        assert accuracy_reward(wrap("0"), "<answer>0</answer>", REG) == 0.0


def test_unknown_type_and_bad_inputs_score_zero():
    assert accuracy_reward(wrap("B"), "<answer>B</answer>", "essay") == 0.0
    assert accuracy_reward(None, "<answer>B</answer>", MC) == 0.0
    assert accuracy_reward(wrap("B"), None, MC) == 0.0
    assert accuracy_reward(12, 13, NUM) == 0.0


def test_solution_without_tag_is_read_whole():
    assert accuracy_reward(wrap("B"), "B", MC) == 1.0


def test_rewards_never_raise_on_any_string():
    samples = [
        "",
        "<answer>",
        "</answer><answer>",
        "<answer>\x00</answer>",
        "<answer>" + "9" * 400 + "</answer>",
        "<answer>1e309</answer>",
        "<answer>-</answer>",
        "<answer>.</answer>",
        "<answer>,</answer>",
        "<think><answer>A</think></answer>",
        "\ud800",
        "<answer>" + "a " * 500 + "</answer>",
    ]
    for completion in samples:
        for solution in samples + ["<answer>3</answer>"]:
            for ptype in (MC, NUM, OCR, FREE, REG, "other"):
                r = accuracy_reward(completion, solution, ptype)
                assert 0.0 <= r <= 1.0
        assert format_reward(completion) in (0.0, 1.0)


class TestFormat:
    @pytest.mark.parametrize(
        "completion, reward",
        [
            ("<think>x</think><answer>B</answer>", 1.0),
            ("<think>\nline\n</think>\n\n<answer>\nB\n</answer>", 1.0),  # dot matches newlines; whitespace between
            ("<think></think><answer></answer>", 1.0),
            (" <think>x</think><answer>B</answer>", 0.0),  # something before
            ("<think>x</think><answer>B</answer>\n", 0.0),  # something after
            ("<think>x</think><answer>B</answer>trailing", 0.0),
            ("<answer>B</answer>", 0.0),  # no think block
            ("<think>x</think>", 0.0),
            ("<think>x</think>words<answer>B</answer>", 0.0),  # only whitespace may separate the blocks
            ("<answer>B</answer><think>x</think>", 0.0),  # order
            ("<think>x<answer>B</answer>", 0.0),  # unclosed think
            ("B", 0.0),
            # the spec's regex is non-greedy but anchored at both ends, so a second answer block still matches it:
            ("<think>x</think><answer>A</answer><answer>B</answer>", 1.0),
        ],
    )
    def test_cases(self, completion, reward):
        assert format_reward(completion) == reward


def test_batched_forms_match_single():
    completions = [wrap("B"), wrap("A"), "B", "<think>x</think><answer>B</answer> "]
    assert accuracy_rewards(completions, "<answer>B</answer>", MC) == [1.0, 0.0, 0.0, 1.0]
    assert format_rewards(completions) == [1.0, 1.0, 0.0, 0.0]
