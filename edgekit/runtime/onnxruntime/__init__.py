"""ONNX Runtime backend: :mod:`.runner` (``OnnxRuntimeRunner``) and its capabilities (``BACKEND``).

Importing this package imports no ``onnxruntime``.
"""

from __future__ import annotations

from typing import Any

from edgekit.runtime.backend import Backend, BatchMode, OpenRequest

#: target-profile device -> its execution provider (the default when a profile names none)
PROVIDERS = {"CPU": "CPUExecutionProvider", "CUDA": "CUDAExecutionProvider",
             "TensorRT": "TensorrtExecutionProvider", "OpenVINO": "OpenVINOExecutionProvider"}


def _options(r: OpenRequest) -> dict[str, Any]:
    providers = [r.spec.provider or "CPUExecutionProvider"]
    if providers[0] != "CPUExecutionProvider":
        providers.append("CPUExecutionProvider")
    return {"threads": r.threads, "providers": providers}


BACKEND = Backend(
    name="onnxruntime", title="ONNX Runtime", runner="edgekit.runtime.onnxruntime.runner:OnnxRuntimeRunner",
    requires="onnxruntime", extra="onnxruntime", aliases=("ort",), formats=("onnx",),
    devices=tuple(PROVIDERS), providers=PROVIDERS,
    gpu_devices=("CUDA", "TensorRT"), versions=("onnxruntime",), rank=10,
    batching=BatchMode.DECLARED, options=_options,
)
