"""Rewards of spec section 3: accuracy by problem type and format. None of them ever raises."""

from .accuracy import (
    REWARD_BY_TYPE,
    accuracy_reward,
    accuracy_rewards,
    free_form_reward,
    multiple_choice_reward,
    numerical_reward,
    ocr_reward,
    regression_reward,
    rouge_mean_f,
    score_answer,
    word_error_rate,
)
from .answer import extract_answer, parse_number, solution_answer
from .format import format_reward, format_rewards

__all__ = [
    "REWARD_BY_TYPE",
    "accuracy_reward",
    "accuracy_rewards",
    "extract_answer",
    "format_reward",
    "format_rewards",
    "free_form_reward",
    "multiple_choice_reward",
    "numerical_reward",
    "ocr_reward",
    "parse_number",
    "regression_reward",
    "rouge_mean_f",
    "score_answer",
    "solution_answer",
    "word_error_rate",
]
