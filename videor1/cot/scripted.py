"""The scripted teacher: CoT for synthetic rows, written from the generator's ground truth.

It stands in for Qwen2.5-VL-72B in the tiny profile, where no real teacher can
run. Each rationale is assembled from the facts the generator recorded (what was
drawn where and when) in varied wording, then ends in the answer. A configurable
share of rows is spoiled the way real teachers fail, so the filter has work to
do: a wrong answer, malformed tags, text cut off mid-thought, a loop, a
rationale too short to teach anything, an option letter that does not exist, a
number written in words. Each output records which spoil (if any) it carries.

It refuses rows without recorded facts: it cannot reason about real data.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .teacher import TeacherOutput

SPOILS = ("wrong_answer", "malformed_tags", "truncated", "looping", "too_short", "bad_option", "non_numeric")
NUMBER_WORDS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten"]

OPENERS = [
    "Let me think.",
    "Hmm, let me look carefully.",
    "Okay, let's break it down.",
    "Let me think about this step by step.",
    "First, let me see what is shown.",
]
CHECKS = [
    "Wait, let me double-check that.",
    "Let me verify this once more.",
    "Hmm, does that hold up? Yes, it does.",
    "Let me make sure I did not miss anything.",
    "Oh, I see, that is consistent.",
]
CLOSERS = [
    "So the answer is {answer}.",
    "Therefore, the answer should be {answer}.",
    "That means the answer is {answer}.",
    "So I will answer {answer}.",
]

# Per family: observations, each a list of alternative wordings; {…} are facts (or derived values).
OBSERVATIONS = {
    "motion_direction": [
        [
            "In the first frames the {color} {shape} is on the {start} side.",
            "At the start, the {color} {shape} sits near the {start} edge.",
        ],
        ["In the later frames it has moved to the {end} side.", "By the end it is on the {end} side of the frame."],
        [
            "So it travels from {start} to {end}, which is moving {direction}.",
            "The motion goes toward the {direction}.",
        ],
    ],
    "event_order": [
        ["{first_cap} shows up at about {first_time_s} seconds.", "Around {first_time_s} s, {first} appears."],
        [
            "{second_cap} only appears later, near {second_time_s} seconds.",
            "Then, at roughly {second_time_s} s, {second} appears.",
        ],
        ["So {first} comes first.", "That puts {first} before {second}."],
    ],
    "count_appearances": [
        ["I track the {color} {shape} through the video.", "Let me follow the {color} {shape} over time."],
        [
            "It disappears and comes back, appearing {appearances} separate time(s).",
            "Counting each time it reappears, I get {appearances}.",
        ],
    ],
    "video_color": [
        ["There is a single {shape} in the video.", "The video shows one {shape}."],
        ["Its color is {color} throughout.", "It looks {color} in every frame."],
    ],
    "video_count": [
        ["I count the {color} squares in a frame.", "Let me count the {color} squares."],
        ["There are {count} of them, and the count does not change.", "I see {count} {color} squares."],
    ],
    "video_size": [
        ["The frame is {frame_px} pixels wide.", "The whole frame spans {frame_px} pixels."],
        ["The {color} square covers about {side_px} pixels on a side.", "Its side is roughly {side_px} pixels long."],
    ],
    "video_describe": [
        ["The video shows a {shape}.", "There is one object, a {shape}."],
        ["It is {color}.", "Its color is {color}."],
    ],
    "image_count": [
        ["I count the {color} circles in the image.", "Let me count each {color} circle."],
        ["There are {count} of them.", "I find {count} {color} circles."],
    ],
    "image_color": [
        ["The image contains a {shape}.", "I see a {shape} in the image."],
        ["The {shape} is {color}.", "Its color is {color}."],
    ],
    "image_position": [
        ["The {color} {shape} is drawn in the image.", "I locate the {color} {shape}."],
        ["It lies on the {side} half of the image.", "It is on the {side} side."],
    ],
    "image_text": [
        ["There is text written in the image.", "The image shows some characters."],
        ["Reading them one by one, they spell {text}.", "The characters read {text}."],
    ],
    "image_describe": [
        ["The image shows one object, a {shape}.", "There is a {shape} in the image."],
        ["It is {color}.", "Its color is {color}."],
    ],
}


def _family(data_source: str) -> str:
    return data_source.rsplit("/", 1)[-1]


def _fill(template: str, facts: dict) -> str:
    values = dict(facts)
    for k in ("first", "second"):
        if k in values:
            values[f"{k}_cap"] = str(values[k])[:1].upper() + str(values[k])[1:]
    return template.format(**values)


def _option_text(row: dict, letter: str) -> str | None:
    for option in row.get("options") or []:
        if option.startswith(f"{letter}."):
            return option[len(letter) + 1 :].strip()
    return None


def _wrong_answer(row: dict, answer: str, rng: np.random.Generator) -> str:
    ptype = row["problem_type"]
    if ptype == "multiple choice":
        letters = [o.split(".", 1)[0] for o in row["options"] if o.split(".", 1)[0] != answer]
        return letters[int(rng.integers(len(letters)))]
    if ptype == "numerical":
        value = int(float(answer))
        return str(value + 1 if value < 1 or rng.random() < 0.5 else value - 1)
    if ptype == "regression":
        return str(round(float(answer) * 1.8 + 3))
    if ptype == "OCR":
        return answer[::-1] + "Q" if answer[::-1] == answer else answer[::-1]
    return "nothing is visible"


class ScriptedTeacher:
    def __init__(
        self, facts_file: str | Path, *, split: str = "train", seed: int = 0, spoil: dict[str, float] | None = None
    ):
        self.facts_file = Path(facts_file)
        if not self.facts_file.is_file():
            raise FileNotFoundError(f"scripted teacher: facts file {self.facts_file} does not exist")
        self.split, self.seed = split, seed
        self.spoil = {k: float(v) for k, v in (spoil or {}).items()}
        unknown = set(self.spoil) - set(SPOILS)
        if unknown or sum(self.spoil.values()) > 1:
            raise ValueError(
                f"scripted teacher: spoil shares must be among {SPOILS} and sum to at most 1, got {self.spoil}"
            )
        self.facts = {}
        for line in self.facts_file.read_text().splitlines():
            f = json.loads(line)
            if f["split"] == split:
                self.facts[(f["data_source"], f["problem_id"])] = f

    def config(self) -> dict:
        return {
            "teacher": "scripted",
            "facts": hashlib.sha256(self.facts_file.read_bytes()).hexdigest(),
            "split": self.split,
            "seed": self.seed,
            "spoil": self.spoil,
            "observations": OBSERVATIONS,
        }

    def _pick_spoil(self, row: dict, rng: np.random.Generator) -> str | None:
        u, edge = rng.random(), 0.0
        for name in SPOILS:
            edge += self.spoil.get(name, 0.0)
            if u < edge:
                applies = {
                    "bad_option": row["problem_type"] == "multiple choice",
                    "non_numeric": row["problem_type"] in ("numerical", "regression"),
                }.get(name, True)
                return name if applies else None
        return None

    def _one(self, row: dict) -> TeacherOutput:
        record = self.facts.get((row["data_source"], row["problem_id"]))
        if record is None:
            return TeacherOutput(
                None,
                f"no ground-truth facts for {row['data_source']} problem {row['problem_id']}: "
                "the scripted teacher writes CoT for synthetic rows only",
            )
        family = _family(row["data_source"])
        if family not in OBSERVATIONS:
            return TeacherOutput(None, f"the scripted teacher has no wording for family {family!r}")
        rng = np.random.default_rng([self.seed, int(row["problem_id"]), sum(map(ord, row["data_source"]))])
        facts, answer = record["facts"], record["answer"]
        spoil = self._pick_spoil(row, rng)
        if spoil == "wrong_answer":
            answer = _wrong_answer(row, answer, rng)
        elif spoil == "bad_option":
            answer = "ABCDEFGH"[len(row["options"])]
        elif spoil == "non_numeric":
            value = float(answer)
            answer = f"about {NUMBER_WORDS[int(value)] if value.is_integer() and 0 <= value <= 10 else 'a few'}"
        said = answer
        if row["problem_type"] == "multiple choice" and _option_text(row, answer):
            said = f"{answer} ({_option_text(row, answer)})"
        pick = lambda options: options[int(rng.integers(len(options)))]  # noqa: E731
        steps = [pick(OPENERS)] + [_fill(pick(alternatives), facts) for alternatives in OBSERVATIONS[family]]
        steps += [pick(CHECKS), pick(CLOSERS).format(answer=said)]
        if spoil == "looping":
            loop = _fill(pick(OBSERVATIONS[family][0]), facts)
            steps = steps[:2] + [loop] * int(rng.integers(8, 14)) + steps[-1:]
        if spoil == "too_short":
            steps = [f"It is {said}."]
        think = " ".join(steps)
        completion = f"<think>{think}</think>\n<answer>{answer}</answer>"
        if spoil == "malformed_tags":
            completion = pick(
                [
                    f"<think>{think}\n<answer>{answer}</answer>",  # think never closed
                    f"{think}\n<answer>{answer}</answer>",  # no think block
                    f"<think>{think}</think>\n<answer>{answer}</answer>\n<answer>{answer}</answer>",  # two answers
                    f"<answer>{answer}</answer>\n<think>{think}</think>",
                ]
            )  # wrong order
        elif spoil == "truncated":
            completion = completion[: max(12, int(len(completion) * rng.uniform(0.3, 0.8)))]
        return TeacherOutput(completion, meta={"spoil": spoil})

    def complete(self, rows: Sequence[dict]) -> list[TeacherOutput]:
        return [self._one(row) for row in rows]
