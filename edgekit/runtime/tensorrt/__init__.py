"""TensorRT backend: :mod:`.runner` (``TensorRTRunner``), :mod:`.builder` (TensorRT builder: ONNX -> engine),
:mod:`.build` (ONNX artifact -> engine artifact), :mod:`.engine_key` (engine sidecar and compatibility key),
:mod:`.env` (the tensorrt import, device facts, one logger), :mod:`.cuda` (TensorRT's libcudart via ctypes),
:mod:`.timing` (trtexec's timing quantities) and its capabilities (``BACKEND``).

Importing this package imports no ``tensorrt`` or CUDA binding.
"""

from __future__ import annotations

from edgekit.runtime.backend import Backend, BatchMode

FORMAT = "tensorrt-engine"

BACKEND = Backend(
    name="tensorrt", title="TensorRT", runner="edgekit.runtime.tensorrt.runner:TensorRTRunner",
    requires="tensorrt", extra="tensorrt", aliases=("trt",), formats=(FORMAT,),
    format_aliases={"engine": FORMAT, "tensorrt": FORMAT}, devices=("GPU", "DLA"),
    gpu_devices=("GPU", "DLA"),  # an NVIDIA GPU, or the DLA beside one on a Jetson
    device_precisions={"DLA": ("fp16", "int8")},  # CUDA: TensorRT's own libcudart via ctypes (runtime/tensorrt/cuda.py)
    versions=("tensorrt",), rank=30, batching=BatchMode.AS_BUILT, takes_threads=False,
    onnx_reason=("TensorRT runs engines built on the device: build one from this ONNX artifact on the target "
                 "('edgekit build --runtime tensorrt') and benchmark that"),
    builder="edgekit.runtime.tensorrt.build", build_precisions=("fp32", "fp16", "int8"),
    verify_rel_tol={"fp32": 1e-3, "fp16": 2e-2, "int8": 5e-2},
)
