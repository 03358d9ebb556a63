"""Named evaluation protocols: every knob that moves a benchmark number, in one record that goes beside it.

``reference`` reproduces the public eval script that produced the paper's table (``src/eval_bench.py`` with
its bundled ``qwen-vl-utils``), except that a failure is never scored silently; ``paper`` is the same with the
temperature the paper states; ``spec`` follows the text of spec sections 5 and 6. The card with each knob's
source is ``docs/eval-protocol.md``. A run may override single knobs (the tiny profile shrinks pixels and
tokens): the overrides are part of the protocol's label, so two runs that differ are never compared silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields, replace

from ..generation import SamplingConfig
from ..media import MediaRules


@dataclass(frozen=True)
class EvalProtocol:
    name: str
    wording: str  # prompt: "eval_script" or "training" (videor1.prompts.TEMPLATES)
    temperature: float
    top_p: float
    max_new_tokens: int
    mra: str  # "float32" (the script) or "exact"
    video_pixel_rule: str  # "qwen_vl_utils" (the cap fetch_video really applies) or "bounds"
    frame_index_rule: str  # "float32" (torch.linspace) or "exact"
    video_min_pixels: int
    video_max_pixels: int
    image_min_pixels: int
    image_max_pixels: int
    fps: float = 2.0
    min_frames: int = 4
    overrides: tuple[tuple[str, object], ...] = ()  # (knob, value) a run changed, in the label

    @property
    def label(self) -> str:
        return self.name + "".join(f", {k}={v}" for k, v in self.overrides)

    def rules(self, frames: int) -> MediaRules:
        return MediaRules(
            fps=self.fps,
            min_frames=self.min_frames,
            max_frames=frames,
            video_min_pixels=self.video_min_pixels,
            video_max_pixels=self.video_max_pixels,
            image_min_pixels=self.image_min_pixels,
            image_max_pixels=self.image_max_pixels,
            video_pixel_rule=self.video_pixel_rule,
            frame_index_rule=self.frame_index_rule,
        )

    def sampling(self, seed: int = 0) -> SamplingConfig:
        return SamplingConfig(
            temperature=self.temperature, top_p=self.top_p, max_new_tokens=self.max_new_tokens, seed=seed
        )

    def to_dict(self) -> dict:
        return {**asdict(self), "overrides": dict(self.overrides), "label": self.label}


REFERENCE = EvalProtocol(
    name="reference",
    wording="eval_script",
    temperature=0.1,
    top_p=0.001,
    max_new_tokens=1024,
    mra="float32",
    video_pixel_rule="qwen_vl_utils",
    frame_index_rule="float32",
    video_min_pixels=128 * 28 * 28,
    video_max_pixels=128 * 28 * 28,  # VIDEO_MIN/MAX_PIXELS; cap 105,369 in effect
    image_min_pixels=4 * 28 * 28,
    image_max_pixels=256 * 28 * 28,  # fetch_image's MIN/MAX_PIXELS
)
PROTOCOLS = {
    "reference": REFERENCE,
    "paper": replace(REFERENCE, name="paper", temperature=0.01),  # the paper's stated decoding (its section 4)
    "spec": EvalProtocol(
        name="spec",
        wording="training",
        temperature=0.01,
        top_p=0.001,
        max_new_tokens=1024,
        mra="exact",
        video_pixel_rule="bounds",
        frame_index_rule="exact",
        video_min_pixels=128 * 28 * 28,
        video_max_pixels=256 * 28 * 28,
        image_min_pixels=4 * 28 * 28,
        image_max_pixels=401_408,
    ),
}
KNOBS = tuple(f.name for f in fields(EvalProtocol) if f.name not in ("name", "overrides"))


def resolve_protocol(name: str, overrides: Mapping[str, object] | None = None) -> EvalProtocol:
    """The named protocol with ``overrides`` applied and recorded in its label."""
    if name not in PROTOCOLS:
        raise ValueError(f"eval protocol {name!r} is not one of {sorted(PROTOCOLS)} (docs/eval-protocol.md)")
    overrides = dict(overrides or {})
    unknown = sorted(set(overrides) - set(KNOBS))
    if unknown:
        raise ValueError(f"eval protocol overrides {unknown} are not knobs of a protocol ({', '.join(KNOBS)})")
    base = PROTOCOLS[name]
    changed = {k: v for k, v in overrides.items() if getattr(base, k) != v}
    protocol = replace(base, **changed, overrides=tuple(sorted(changed.items())))
    protocol.rules(16)  # validates the rule names now, not at the first video
    return protocol
