"""edgekit: trained image classifiers in, measured and deployable edge engines out.

The package root imports nothing heavy: ``import edgekit`` and ``edgekit --help``
never pull in torch, onnxruntime or openvino. It does load the runtime registry
(plain data), so that every part of edgekit, the core included, knows the
installed backends' devices, extras and versions without naming a runtime.

The API names below are resolved on first use (PEP 562), each from the module that owns it:

* :func:`load_artifact` (path) -> :class:`~edgekit.core.manifest.Artifact`, every file's sha256 verified;
* :func:`open_runner` (artifact, runtime=...) -> a runner (a context manager: ``infer({name: x})``);
* :func:`preprocess` (artifact, images) -> the float32 batch the model takes, as the manifest says;
* :func:`predict` (artifact, images, top=5, runtime=..., precision=...) -> top-K labels per image;
* :func:`import_onnx` (model.onnx, output=..., preprocess=..., labels=...) -> an artifact from any ONNX classifier;
* :func:`run_bench` (artifacts, target=..., **options) -> a :class:`~edgekit.bench.results.BenchReport`;
* :func:`run_gate` (report, baseline, **options) -> a :class:`~edgekit.gate.GateResult` (truthy when it passes).

(``edgekit.bench`` and ``edgekit.gate`` are the subpackages, hence ``run_bench`` / ``run_gate``.)
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

import edgekit.runtime.registry  # noqa: E402,F401  (registers the built-in runtime backends)

#: public name -> (module, attribute), imported on first access
_LAZY: dict[str, tuple[str, str]] = {
    "load_artifact": ("edgekit.core.manifest", "load_artifact"),
    "open_runner": ("edgekit.runtime.registry", "runner_for_artifact"),
    "preprocess": ("edgekit.classify", "preprocess"),
    "predict": ("edgekit.classify", "predict"),
    "import_onnx": ("edgekit.export.import_onnx", "import_onnx"),
    "run_bench": ("edgekit.api", "run_bench"),
    "run_gate": ("edgekit.api", "run_gate"),
}

__all__ = ["__version__", *_LAZY]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(module), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'edgekit' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
