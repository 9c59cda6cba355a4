"""ONNX Runtime backend: :mod:`.runner` (``OnnxRuntimeRunner``).

Importing this package imports no ``onnxruntime``.
"""
