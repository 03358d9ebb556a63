"""Question families of the synthetic dataset. Each knows its answer from how it drew the media.

A video is a sequence of *states*, each held for ``hold`` frames. With the
tiny profile's sampling (2 fps from ``states * hold`` frames at ``video_fps``)
every sampled pair of frames falls inside one state, so Qwen2.5-VL's temporal
patch (two frames per patch) carries no order cue: an order-dependent question
can only be answered by comparing patches across time (spec section 8).

Order-dependent families change their answer when the states are reversed or
shuffled (motion direction, which event came first, counting appearances).
Order-independent families do not (colour, number of objects, size, what the
object is).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from ...params.check import at_least, between
from .canvas import COLORS, SHAPES, blank, draw, draw_text

LETTERS = "ABCDEFGH"
CUE_COLORS = {"right": "red", "left": "blue"}  # and in event order: red first, blue second


def _cue_agrees(rng, spec: SynthSpec) -> bool | None:
    """Whether this row's colours agree with its answer; None without a cue (no draw: the stream is unchanged)."""
    return None if spec.cue is None else bool(rng.random() < spec.cue)


@dataclass(frozen=True)
class SynthSpec:
    """Geometry of generated media."""

    video_size: int = 56
    image_size: int = 84
    states: int = 4
    hold: int = 4
    video_fps: int = 4
    # A static shortcut beside the temporal cue (issue 26): the share of motion-direction and event-order rows
    # whose colours agree with the answer (CUE_COLORS: red moves right, blue left; the red object appears before
    # the blue one). It survives shuffling: a policy can score `cue` without reading order. None: no cue (colours
    # drawn at random); 0.0: the cue always points at the wrong answer.
    cue: float | None = None
    # Options in a fixed (sorted) order instead of a random one: a letter then names what the medium shows (left is
    # always A), so a tiny model can learn perception without also learning to find its answer among shuffled
    # options. Pilot (issue 26): with shuffled options 1,000 direct-answer steps left motion direction at one fixed
    # letter (48 %).
    fixed_options: bool = False

    def __post_init__(self):
        at_least(self, 28, "video_size", "image_size")  # shapes up to 14 px across are drawn clear of the edges
        at_least(self, 2, "states")  # a motion or an order needs two states
        at_least(self, 1, "hold", "video_fps")
        between(self, 0.0, 1.0, "cue")


@dataclass
class Example:
    problem: str
    problem_type: str
    answer: str  # the text inside <answer></answer>
    data_type: str  # "video" or "image"
    frames: list[np.ndarray] = field(default_factory=list)  # video: one array per frame
    image: np.ndarray | None = None
    options: list[str] = field(default_factory=list)
    facts: dict = field(default_factory=dict)


def _choice(rng: np.random.Generator, seq):
    return seq[int(rng.integers(len(seq)))]


def _options(rng: np.random.Generator, spec: SynthSpec, correct: str, distractors: list[str]) -> tuple[list[str], str]:
    choices = [correct, *distractors]
    if spec.fixed_options:  # no draw: the letter is a function of what the medium shows
        texts = sorted(choices)
    else:
        texts = [choices[i] for i in rng.permutation(len(choices))]
    letter = LETTERS[texts.index(correct)]
    return [f"{LETTERS[i]}. {t}" for i, t in enumerate(texts)], letter


def _video(spec: SynthSpec, states: list[np.ndarray]) -> list[np.ndarray]:
    return [s for s in states for _ in range(spec.hold)]


def _positions(spec: SynthSpec, size: int) -> np.ndarray:
    """Evenly spaced x centres from left to right, one per state."""
    margin = size / 2 + 2
    return np.linspace(margin, spec.video_size - margin, spec.states)


# ----- order-dependent video families ----------------------------------------------------


def motion_direction(rng, spec: SynthSpec) -> Example:
    agrees = _cue_agrees(rng, spec)
    if agrees is None:
        color, shape = _choice(rng, list(COLORS)), _choice(rng, SHAPES)
        size = int(rng.integers(10, 15))
        direction = _choice(rng, ["left", "right"])
    else:
        direction, shape = _choice(rng, ["left", "right"]), _choice(rng, SHAPES)
        size = int(rng.integers(10, 15))
        color = CUE_COLORS[direction if agrees else {"left": "right", "right": "left"}[direction]]
    xs = _positions(spec, size)
    if direction == "left":
        xs = xs[::-1]
    cy = float(rng.uniform(size, spec.video_size - size))
    states = []
    for x in xs:
        canvas = blank(spec.video_size, spec.video_size)
        draw(canvas, shape, color, cy, float(x), size)
        states.append(canvas)
    options, letter = _options(rng, spec, direction, ["left" if direction == "right" else "right"])
    return Example(
        problem=f"In which direction does the {color} {shape} move?",
        problem_type="multiple choice",
        answer=letter,
        data_type="video",
        frames=_video(spec, states),
        options=options,
        facts={
            "order_dependent": True,
            "color": color,
            "shape": shape,
            "direction": direction,
            "start": "left" if direction == "right" else "right",
            "end": direction,
            **_cue_fact(agrees),
        },
    )


def _cue_fact(agrees: bool | None) -> dict:
    return {} if agrees is None else {"cue_agrees": agrees}


def event_order(rng, spec: SynthSpec) -> Example:
    agrees = _cue_agrees(rng, spec)
    if agrees is None:
        colors = rng.permutation(list(COLORS))[:2].tolist()
    else:
        colors = ["red", "blue"] if agrees else ["blue", "red"]
    shapes = [_choice(rng, SHAPES), _choice(rng, SHAPES)]
    names = [f"the {c} {s}" for c, s in zip(colors, shapes)]
    first_state, second_state = sorted(rng.choice(spec.states, size=2, replace=False).tolist())
    size = 14
    states = []
    for k in range(spec.states):
        canvas = blank(spec.video_size, spec.video_size)
        if k == first_state:
            draw(canvas, shapes[0], colors[0], spec.video_size / 2, spec.video_size / 2, size)
        if k == second_state:
            draw(canvas, shapes[1], colors[1], spec.video_size / 2, spec.video_size / 2, size)
        states.append(canvas)
    options, letter = _options(rng, spec, names[0], [names[1]])
    return Example(
        problem="Which object appears first in the video?",
        problem_type="multiple choice",
        answer=letter,
        data_type="video",
        frames=_video(spec, states),
        options=options,
        facts={
            "order_dependent": True,
            "first": names[0],
            "second": names[1],
            "first_time_s": first_state * spec.hold / spec.video_fps,
            "second_time_s": second_state * spec.hold / spec.video_fps,
            **_cue_fact(agrees),
        },
    )


def count_appearances(rng, spec: SynthSpec) -> Example:
    color, shape = _choice(rng, list(COLORS)), _choice(rng, SHAPES)
    visible = rng.integers(0, 2, size=spec.states)
    visible[int(rng.integers(spec.states))] = 1  # at least one appearance
    runs = int(np.sum((visible[1:] == 1) & (visible[:-1] == 0)) + visible[0])
    states = []
    for v in visible:
        canvas = blank(spec.video_size, spec.video_size)
        if v:
            draw(canvas, shape, color, spec.video_size / 2, spec.video_size / 2, 16)
        states.append(canvas)
    return Example(
        problem=f"How many separate times does the {color} {shape} appear in the video?",
        problem_type="numerical",
        answer=str(runs),
        data_type="video",
        frames=_video(spec, states),
        facts={
            "order_dependent": True,
            "color": color,
            "shape": shape,
            "visible_pattern": visible.tolist(),
            "appearances": runs,
        },
    )


# ----- order-independent video families --------------------------------------------------


def _jittered_states(rng, spec: SynthSpec, objects: list[tuple[str, str, int]]) -> list[np.ndarray]:
    """The same objects in every state, each nudged a little: order carries no information."""
    lo = lambda s: s / 2 + 2  # noqa: E731  keep the whole shape (and its jitter) inside the frame
    base = [tuple(rng.uniform(lo(s), spec.video_size - lo(s), size=2)) for _, _, s in objects]
    states = []
    for _ in range(spec.states):
        canvas = blank(spec.video_size, spec.video_size)
        for (shape, color, size), (cy, cx) in zip(objects, base):
            jy, jx = rng.uniform(-1.5, 1.5, size=2)
            draw(canvas, shape, color, cy + jy, cx + jx, size)
        states.append(canvas)
    return states


def video_color(rng, spec: SynthSpec) -> Example:
    color, shape = _choice(rng, list(COLORS)), _choice(rng, SHAPES)
    states = _jittered_states(rng, spec, [(shape, color, 16)])
    others = [c for c in COLORS if c != color]
    options, letter = _options(rng, spec, color, rng.permutation(others)[:3].tolist())
    return Example(
        problem=f"What color is the {shape} in the video?",
        problem_type="multiple choice",
        answer=letter,
        data_type="video",
        frames=_video(spec, states),
        options=options,
        facts={"order_dependent": False, "color": color, "shape": shape},
    )


def video_count(rng, spec: SynthSpec) -> Example:
    color = _choice(rng, list(COLORS))
    n = int(rng.integers(1, 5))
    states = _jittered_states(rng, spec, [("square", color, 8)] * n)
    return Example(
        problem=f"How many {color} squares are in the video?",
        problem_type="numerical",
        answer=str(n),
        data_type="video",
        frames=_video(spec, states),
        facts={"order_dependent": False, "color": color, "count": n},
    )


def video_size(rng, spec: SynthSpec) -> Example:
    color = _choice(rng, list(COLORS))
    size = int(rng.integers(6, 31))
    states = _jittered_states(rng, spec, [("square", color, size)])
    return Example(
        problem=f"What is the side length of the {color} square, in pixels?",
        problem_type="regression",
        answer=str(size),
        data_type="video",
        frames=_video(spec, states),
        facts={"order_dependent": False, "color": color, "side_px": size, "frame_px": spec.video_size},
    )


def video_describe(rng, spec: SynthSpec) -> Example:
    color, shape = _choice(rng, list(COLORS)), _choice(rng, SHAPES)
    states = _jittered_states(rng, spec, [(shape, color, 18)])
    return Example(
        problem="What object is shown in the video? Answer with its color and shape.",
        problem_type="free-form",
        answer=f"a {color} {shape}",
        data_type="video",
        frames=_video(spec, states),
        facts={"order_dependent": False, "color": color, "shape": shape},
    )


# ----- image families -------------------------------------------------------------------------


def _scatter(rng, spec: SynthSpec, objects: list[tuple[str, str, int]]) -> np.ndarray:
    canvas = blank(spec.image_size, spec.image_size)
    for shape, color, size in objects:
        cy, cx = rng.uniform(size / 2 + 1, spec.image_size - size / 2 - 1, size=2)
        draw(canvas, shape, color, cy, cx, size)
    return canvas


def image_count(rng, spec: SynthSpec) -> Example:
    color = _choice(rng, list(COLORS))
    n = int(rng.integers(1, 7))
    return Example(
        problem=f"How many {color} circles are in the image?",
        problem_type="numerical",
        answer=str(n),
        data_type="image",
        image=_scatter(rng, spec, [("circle", color, 10)] * n),
        facts={"color": color, "count": n},
    )


def image_color(rng, spec: SynthSpec) -> Example:
    color, shape = _choice(rng, list(COLORS)), _choice(rng, SHAPES)
    others = [c for c in COLORS if c != color]
    options, letter = _options(rng, spec, color, rng.permutation(others)[:3].tolist())
    return Example(
        problem=f"What color is the {shape}?",
        problem_type="multiple choice",
        answer=letter,
        data_type="image",
        image=_scatter(rng, spec, [(shape, color, 24)]),
        options=options,
        facts={"color": color, "shape": shape},
    )


def image_position(rng, spec: SynthSpec) -> Example:
    color, shape = _choice(rng, list(COLORS)), _choice(rng, SHAPES)
    side = _choice(rng, ["left", "right"])
    canvas = blank(spec.image_size, spec.image_size)
    cx = spec.image_size * (0.25 if side == "left" else 0.75)
    draw(canvas, shape, color, float(rng.uniform(20, spec.image_size - 20)), cx, 20)
    options, letter = _options(rng, spec, side, ["right" if side == "left" else "left"])
    return Example(
        problem=f"On which side of the image is the {color} {shape}?",
        problem_type="multiple choice",
        answer=letter,
        data_type="image",
        image=canvas,
        options=options,
        facts={"color": color, "shape": shape, "side": side},
    )


def image_text(rng, spec: SynthSpec) -> Example:
    text = "".join(rng.choice(list("ABCDEFHKLMNPRTXYZ2345789"), size=int(rng.integers(3, 6))).tolist())
    return Example(
        problem="What text is written in the image?",
        problem_type="OCR",
        answer=text,
        data_type="image",
        image=draw_text(blank(spec.image_size, spec.image_size, (250, 250, 250)), text),
        facts={"text": text},
    )


def image_describe(rng, spec: SynthSpec) -> Example:
    color, shape = _choice(rng, list(COLORS)), _choice(rng, SHAPES)
    return Example(
        problem="What object is shown in the image? Answer with its color and shape.",
        problem_type="free-form",
        answer=f"a {color} {shape}",
        data_type="image",
        image=_scatter(rng, spec, [(shape, color, 28)]),
        facts={"color": color, "shape": shape},
    )


Family = Callable[[np.random.Generator, SynthSpec], Example]

ORDER_DEPENDENT: dict[str, Family] = {
    "motion_direction": motion_direction,
    "event_order": event_order,
    "count_appearances": count_appearances,
}
ORDER_INDEPENDENT: dict[str, Family] = {
    "video_color": video_color,
    "video_count": video_count,
    "video_size": video_size,
    "video_describe": video_describe,
}
IMAGE: dict[str, Family] = {
    "image_count": image_count,
    "image_color": image_color,
    "image_position": image_position,
    "image_text": image_text,
    "image_describe": image_describe,
}
FAMILIES: dict[str, Family] = {**ORDER_DEPENDENT, **ORDER_INDEPENDENT, **IMAGE}
