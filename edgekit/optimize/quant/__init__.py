"""Quantization wing: INT8 / FP16 candidates, their calibration and the accuracy check.

``quantize`` (options, plan, verb), ``candidate`` (makes the quantized model per method),
``presets`` / ``patterns`` (what stays in float), ``data`` (calibration and evaluation sets),
``control`` (accuracy-control fallback), ``ort`` / ``nncf`` / ``fp16`` (one backend per file).
"""
