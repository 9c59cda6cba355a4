"""Runtime names -> runner classes, resolved without importing any runtime.

``available_runtimes()`` looks packages up (``importlib.util.find_spec``) and
imports nothing; ``create_runner`` imports only the backend module asked for.
``runner_for_artifact`` picks the runner from an artifact's manifest format.
"""

from __future__ import annotations

import importlib
import inspect
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.lazy import available
from edgekit.core.manifest import Artifact, load_artifact
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
        RuntimeEntry("onnxruntime", "edgekit.runtime.onnxruntime.runner", "OnnxRuntimeRunner", "onnxruntime", ("ort",)),
        RuntimeEntry("openvino", "edgekit.runtime.openvino.runner", "OpenVINORunner", "openvino", ("ov",)),
        RuntimeEntry("tensorrt", "edgekit.runtime.tensorrt.runner", "TensorRTRunner", "tensorrt", ("trt",)),
    )
}
ALIASES: dict[str, str] = {a: e.name for e in RUNTIMES.values() for a in e.aliases}
#: manifest format -> the runtimes that run it, the default first
FORMAT_RUNTIMES: dict[str, tuple[str, ...]] = {
    "onnx": ("onnxruntime", "openvino"),
    "openvino-ir": ("openvino",),
    "tensorrt-engine": ("tensorrt",),
}


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


def runner_for_artifact(artifact: Artifact | str | Path, *, runtime: str | None = None, **options: Any) -> Runner:
    """A runner for an artifact (a directory with ``edgekit.json``, or a loaded :class:`Artifact`).

    The runtime follows the manifest's format (``onnx`` -> onnxruntime,
    ``openvino-ir`` -> openvino, ``tensorrt-engine`` -> tensorrt); ``runtime``
    picks another one that runs the format. For an OpenVINO IR built by
    ``edgekit build`` the device and the inference precision recorded in the
    manifest are the defaults; ``options`` override them. A path is loaded with
    every file's sha256 verified.
    """
    art = artifact if isinstance(artifact, Artifact) else load_artifact(artifact)
    m = art.manifest
    runtimes = FORMAT_RUNTIMES.get(m.format)
    if runtimes is None:
        raise ArtifactError(
            f"{art.path} has format {m.format!r}, which no edgekit runtime runs",
            hint=f"known formats: {', '.join(FORMAT_RUNTIMES)}",
        )
    name = resolve_runtime(runtime).name if runtime is not None else runtimes[0]
    if name not in runtimes:
        raise UsageError(
            f"{name} does not run {m.format} artifacts like {art.path}",
            hint=f"use {' or '.join(runtimes)}"
            + ("; build an engine with 'edgekit build'" if m.format == "onnx" else ""),
        )
    if name == "openvino" and m.format == "openvino-ir":
        defaults = {"precision": m.extra.get("inference_precision"), "device": m.extra.get("device")}
        for k, v in defaults.items():
            if v is not None:
                options.setdefault(k, v)
    return create_runner(name, art.model_path, **options)
