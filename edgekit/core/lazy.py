"""Lazy imports of heavy optional dependencies with an error naming the extra."""

from __future__ import annotations

import importlib
import importlib.util
from types import ModuleType

from edgekit.core.errors import MissingDependencyError

#: module -> the extra of edgekit that installs it. Each runtime backend registers its own modules
#: (:mod:`edgekit.runtime.registry`, loaded by ``import edgekit``); core names no runtime.
EXTRA_OF: dict[str, str] = {
    "torch": "torch",
    "torchvision": "torch",
    "timm": "torch",
    "safetensors": "torch",
    "onnxscript": "torch",
    "nncf": "openvino",
    "polygraphy": "tensorrt",
    "torch_pruning": "prune",
    "ray": "ray",
}


def register_extra(module: str, extra: str) -> None:
    """Record that ``pip install 'edgekit[<extra>]'`` installs ``module``."""
    EXTRA_OF[module] = extra


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
