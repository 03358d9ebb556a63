"""DVC stage `synth`: the procedurally generated image+video dataset (tiny profile's data)."""

from __future__ import annotations

import json

from videor1.data.synth import generate

from .params import config


def main() -> None:
    cfg = config("synth")
    counts = generate(cfg.out, cfg)
    print(json.dumps({split: sum(c.values()) for split, c in counts.items()}))


if __name__ == "__main__":
    main()
