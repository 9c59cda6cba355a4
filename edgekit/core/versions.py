"""Tool versions, read from package metadata without importing the packages."""

from __future__ import annotations

import platform
from importlib import metadata

TRACKED = (
    "edgekit",
    "numpy",
    "onnx",
    "onnxruntime",
    "openvino",
    "nncf",
    "torch",
    "torchvision",
    "timm",
    "onnxscript",
    "tensorrt",
    "torch-pruning",
)


def package_version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def tool_versions(names: tuple[str, ...] = TRACKED) -> dict[str, str]:
    """Versions of the installed tracked packages, plus python."""
    out = {"python": platform.python_version()}
    for n in names:
        v = package_version(n)
        if v is not None:
            out[n] = v
    return out
