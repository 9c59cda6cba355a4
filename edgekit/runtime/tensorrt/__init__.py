"""TensorRT backend: :mod:`.runner` (``TensorRTRunner``), :mod:`.builder` (TensorRT builder: ONNX -> engine),
:mod:`.build` (ONNX artifact -> engine artifact), :mod:`.engine_key` (engine sidecar and compatibility key).

Importing this package imports no ``tensorrt`` or CUDA binding.
"""
