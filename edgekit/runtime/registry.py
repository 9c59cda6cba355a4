"""Runtime names -> runner classes, resolved without importing any runtime.

``available_runtimes()`` looks packages up (``importlib.util.find_spec``) and
imports nothing; ``create_runner`` imports only the backend module asked for.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.core.errors import UsageError
from edgekit.core.lazy import available
from edgekit.runtime.base import Runner


@dataclass(frozen=True)
class RuntimeEntry:
    name: str
    module: str  # the edgekit backend module
    cls: str  # the runner class in it
    requires: str  # the third-party package it imports
    aliases: tuple[str, ...] = ()


RUNTIMES: dict[str, RuntimeEntry] = {
    e.name: e
    for e in (
        RuntimeEntry("onnxruntime", "edgekit.runtime.onnxruntime", "OnnxRuntimeRunner", "onnxruntime", ("ort",)),
        RuntimeEntry("openvino", "edgekit.runtime.openvino", "OpenVINORunner", "openvino", ("ov",)),
        RuntimeEntry("tensorrt", "edgekit.runtime.tensorrt", "TensorRTRunner", "tensorrt", ("trt",)),
    )
}
ALIASES: dict[str, str] = {a: e.name for e in RUNTIMES.values() for a in e.aliases}


def runtime_names() -> list[str]:
    """Canonical runtime names, in preference order."""
    return list(RUNTIMES)


def resolve_runtime(runtime: str) -> RuntimeEntry:
    """The entry for a runtime name or alias (case-insensitive)."""
    key = str(runtime).strip().lower()
    key = ALIASES.get(key, key)
    entry = RUNTIMES.get(key)
    if entry is None:
        valid = ", ".join(f"{e.name} ({'/'.join(e.aliases)})" for e in RUNTIMES.values())
        raise UsageError(f"unknown runtime {runtime!r}", hint=f"choose one of: {valid}")
    return entry


def runner_class(runtime: str) -> type[Runner]:
    """The runner class for ``runtime`` (imports the backend module, not the runtime)."""
    entry = resolve_runtime(runtime)
    module = importlib.import_module(entry.module)
    cls: type[Runner] = getattr(module, entry.cls)
    return cls


def available_runtimes() -> list[str]:
    """Runtimes whose package is installed (looked up, not imported)."""
    return [e.name for e in RUNTIMES.values() if available(e.requires)]


def create_runner(runtime: str, model_path: str | Path, **options: Any) -> Runner:
    """A runner for ``model_path`` on ``runtime``; ``options`` go to its constructor.

    Unknown options are a :class:`UsageError` that lists the accepted ones.
    The runner is not activated: use it in a ``with`` block.
    """
    cls = runner_class(runtime)
    params = inspect.signature(cls.__init__).parameters
    accepted = [n for n, p in params.items() if p.kind is inspect.Parameter.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise UsageError(
            f"{cls.name} runner does not take option(s) {', '.join(unknown)}",
            hint=f"it takes: {', '.join(accepted) or 'no options'}",
        )
    return cls(model_path, **options)
