"""Make torchvision importable where its compiled ops cannot load.

PyPI's torchvision is a CUDA build. On a CPU-only machine its C++ extension
fails to load, and ``import torchvision`` then dies registering fake kernels for
``torchvision::nms`` and ``torchvision::qnms``, two ops whose schemas the
extension would have defined. transformers' Qwen2.5-VL processors import
torchvision, so we define those two schemas (no kernels: NMS is never called
here) and import again. Where the extension loads (a GPU machine) nothing is
touched.
"""

from __future__ import annotations

import sys

_SCHEMAS = {
    "nms": "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms": "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
}
_library = None  # keep the torch.library handle alive: dropping it unregisters the schemas


def ensure_torchvision() -> None:
    global _library
    try:
        import torchvision  # noqa: F401

        return
    except RuntimeError as err:
        if "torchvision::" not in str(err):
            raise
    import torch

    for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
        del sys.modules[name]
    _library = torch.library.Library("torchvision", "FRAGMENT")
    for schema in _SCHEMAS.values():
        _library.define(schema)
    import torchvision  # noqa: F401
