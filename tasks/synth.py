"""DVC stage `synth`: the procedurally generated image+video dataset (tiny profile's data)."""

from __future__ import annotations

import json

from videor1.data.synth import SynthConfig, SynthSpec, generate

from .params import stage_params


def main() -> None:
    p = stage_params("synth")
    cfg = SynthConfig(
        seed=p["seed"],
        train_video_rows=p["train_video_rows"],
        train_image_rows=p["train_image_rows"],
        eval_rows_per_benchmark=p["eval_rows_per_benchmark"],
        broken_rows=p["broken_rows"],
        spec=SynthSpec(**p["spec"]),
        eval_sets=p.get("eval_sets"),  # absent: the six benchmark stand-ins
    )
    counts = generate(p["out"], cfg)
    print(json.dumps({split: sum(c.values()) for split, c in counts.items()}))


if __name__ == "__main__":
    main()
