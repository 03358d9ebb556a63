"""videor1: the Video-R1 recipe (data, CoT, SFT, T-GRPO, eval) as a reproducible pipeline."""

from ._torchvision import ensure_torchvision

ensure_torchvision()

__version__ = "0.1.0"
