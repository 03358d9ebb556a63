"""The prompt: the one place the question template, per-type suffixes and options block are written.

CoT generation, SFT, RL and eval all build their user turn here, so a model is
trained and evaluated on the same words. The wording is the public Video-R1
prompt (spec section 3), kept verbatim because benchmark numbers depend on it.
"""

from __future__ import annotations

from collections.abc import Mapping

QUESTION_TEMPLATE = (
    "{question}\n"
    "Please think about this question as if you were a human pondering deeply. "
    "Engage in an internal dialogue using expressions such as 'let me think', 'wait', 'Hmm', 'oh, I see', "
    "'let's break it down', etc, or other natural language thought expressions "
    "It's encouraged to include self-reflection or verification in the reasoning process. "
    "Provide your detailed reasoning between the <think> </think> tags, and then give your final answer "
    "between the <answer> </answer> tags."
)

# The public eval script's wording (``src/eval_bench.py``), which produced the paper's table: "between the
# <think> and </think> tags ... between the <answer> and </answer> tags". Training keeps QUESTION_TEMPLATE.
EVAL_SCRIPT_QUESTION_TEMPLATE = (
    "{question}\n"
    "Please think about this question as if you were a human pondering deeply. "
    "Engage in an internal dialogue using expressions such as 'let me think', 'wait', 'Hmm', 'oh, I see', "
    "'let's break it down', etc, or other natural language thought expressions "
    "It's encouraged to include self-reflection or verification in the reasoning process. "
    "Provide your detailed reasoning between the <think> and </think> tags, and then give your final answer "
    "between the <answer> and </answer> tags."
)
TEMPLATES = {"training": QUESTION_TEMPLATE, "eval_script": EVAL_SCRIPT_QUESTION_TEMPLATE}

TYPE_SUFFIX = {
    "multiple choice": " Please provide only the single option letter (e.g., A, B, C, D, etc.) within the <answer> </answer> tags.",
    "numerical": " Please provide the numerical value (e.g., 42 or 3.14) within the <answer> </answer> tags.",
    "OCR": " Please transcribe text from the image/video clearly and provide your text answer within the <answer> </answer> tags.",
    "free-form": " Please provide your text answer within the <answer> </answer> tags.",
    "regression": " Please provide the numerical value (e.g., 42 or 3.14) within the <answer> </answer> tags.",
}


def question_text(row: Mapping) -> str:
    """The problem, with the options block for multiple choice.

    As in the public code the options block follows the problem directly
    ("...?Options:\\nA. ...\\n"), so prompts match the released model's training.
    """
    if row["problem_type"] == "multiple choice":
        return row["problem"] + "Options:\n" + "".join(f"{option}\n" for option in row["options"])
    return row["problem"]


def prompt_text(row: Mapping, wording: str = "training") -> str:
    """The text of the user turn: question, reasoning instruction, per-type answer instruction.
    ``wording``: "training" (every stage) or "eval_script" (the public eval script's, for its protocol)."""
    problem_type = row["problem_type"]
    if problem_type not in TYPE_SUFFIX:
        raise ValueError(f"unknown problem_type {problem_type!r} (known: {sorted(TYPE_SUFFIX)})")
    return TEMPLATES[wording].format(question=question_text(row)) + TYPE_SUFFIX[problem_type]


def user_message(row: Mapping, wording: str = "training") -> dict:
    """The user turn as a chat message: the medium's placeholder, then the prompt text."""
    return {
        "role": "user",
        "content": [{"type": row["data_type"]}, {"type": "text", "text": prompt_text(row, wording)}],
    }


def assistant_message(text: str) -> dict:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}
