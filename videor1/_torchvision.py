"""Make torchvision importable where its compiled ops cannot load, in every process.

PyPI's torchvision is a CUDA build. On a CPU-only machine its C++ extension
fails to load, and ``import torchvision`` then dies registering fake kernels for
``torchvision::nms`` and ``torchvision::qnms``, two ops whose schemas the
extension would have defined. transformers' Qwen2.5-VL processors import
torchvision, so we define those two schemas (no kernels: NMS is never called
here) before torchvision's first import. Where the extension loads (a GPU
machine) nothing is touched.

The fix runs lazily: ``install()`` puts a finder on ``sys.meta_path`` that acts
once, when something first imports torchvision. ``import videor1`` installs it,
and ``scripts/setup.sh`` adds a start-up file (``videor1-torchvision.pth``) so
that processes which never import videor1 (vLLM's spawned engine and workers,
torchrun's children) get it too. Installing costs nothing: torch is imported
only when torchvision is.
"""

from __future__ import annotations

import importlib.machinery
import sys
from pathlib import Path

_SCHEMAS = (
    "nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
    "qnms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor",
)
_library = None  # keep the torch.library handle alive: dropping it unregisters the schemas


def _define_missing_schemas() -> None:
    """Load torchvision's extension as torchvision would; where it cannot load, define its two schemas."""
    global _library
    import torch

    spec = importlib.machinery.PathFinder.find_spec("torchvision")
    if spec is None or not spec.submodule_search_locations:
        return  # torchvision is not installed: nothing to fix
    root = Path(next(iter(spec.submodule_search_locations)))
    libraries = [
        root / f"_C{suffix}" for suffix in importlib.machinery.EXTENSION_SUFFIXES if (root / f"_C{suffix}").exists()
    ]
    try:
        if libraries:
            torch.ops.load_library(str(libraries[0]))
            return
    except (OSError, RuntimeError):
        pass
    if _library is None:
        _library = torch.library.Library("torchvision", "FRAGMENT")
        for schema in _SCHEMAS:
            _library.define(schema)


class _TorchvisionFixer:
    """A meta-path finder that finds nothing: it only runs the fix before torchvision's first import."""

    def find_spec(self, name, path=None, target=None):
        if name == "torchvision":
            sys.meta_path.remove(self)
            _define_missing_schemas()
        return None


def install() -> None:
    """Arm the fix (idempotent). If torchvision is already imported, it loaded: nothing to do."""
    if "torchvision" in sys.modules or any(isinstance(f, _TorchvisionFixer) for f in sys.meta_path):
        return
    sys.meta_path.insert(0, _TorchvisionFixer())
