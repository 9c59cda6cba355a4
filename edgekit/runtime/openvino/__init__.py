"""OpenVINO backend: :mod:`.runner` (``OpenVINORunner``) and :mod:`.build` (ONNX -> OpenVINO IR artifact).

Importing this package imports no ``openvino``.
"""
