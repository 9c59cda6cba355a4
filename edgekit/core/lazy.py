"""Lazy imports of heavy optional dependencies with an error naming the extra."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from edgekit.core.errors import MissingDependencyError

#: module -> the extra of edgekit that installs it
EXTRA_OF: dict[str, str] = {
    "torch": "torch",
    "torchvision": "torch",
    "timm": "torch",
    "safetensors": "torch",
    "onnxscript": "torch",
    "onnxruntime": "onnxruntime",
    "openvino": "openvino",
    "nncf": "openvino",
    "tensorrt": "tensorrt",
    "polygraphy": "tensorrt",
    "cuda": "tensorrt",
    "torch_pruning": "prune",
    "ray": "ray",
}


def require(module: str, *, purpose: str = "") -> ModuleType:
    """Import ``module`` or raise :class:`MissingDependencyError` naming the extra.

    Only a missing top-level package becomes a MissingDependencyError; an
    installed package that fails while importing raises its own error, since
    hiding that would hide a broken installation.
    """
    top = module.split(".")[0]
    if importlib.util.find_spec(top) is None:
        raise MissingDependencyError(top, EXTRA_OF.get(top, "all"), purpose=purpose)
    return importlib.import_module(module)


def available(module: str) -> bool:
    """True when ``module`` can be imported (looked up, not imported)."""
    return importlib.util.find_spec(module.split(".")[0]) is not None
