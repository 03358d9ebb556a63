"""videor1: the Video-R1 recipe (data, CoT, SFT, T-GRPO, eval) as a reproducible pipeline."""

from . import _torchvision

_torchvision.install()  # cheap: torchvision is fixed when first imported (see videor1/_torchvision.py)

__version__ = "0.1.0"
