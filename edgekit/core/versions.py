"""Tool versions, read from package metadata without importing the packages."""

from __future__ import annotations

import platform
from importlib import metadata

#: distributions whose versions every record keeps; each runtime backend adds its own
#: (:mod:`edgekit.runtime.registry`, loaded by ``import edgekit``); core names no runtime
TRACKED: list[str] = [
    "edgekit",
    "numpy",
    "onnx",
    "nncf",
    "torch",
    "torchvision",
    "timm",
    "onnxscript",
    "torch-pruning",
]


def track(*names: str) -> None:
    """Record the versions of ``names`` too (in :func:`tool_versions`)."""
    TRACKED.extend(n for n in names if n not in TRACKED)


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def tool_versions(names: tuple[str, ...] | None = None) -> dict[str, str]:
    """Versions of the installed packages ``names`` (default: the tracked ones), plus python."""
    out = {"python": platform.python_version()}
    for n in TRACKED if names is None else names:
        v = package_version(n)
        if v is not None:
            out[n] = v
    return out
