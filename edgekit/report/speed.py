"""Say plainly when a lower precision did not pay: INT8 (or FP16/BF16) slower than FP32 on the same runtime.

A precision is chosen by measurement, never by assumption (OpenVINO keeps depthwise convolutions in bf16 on
AMX CPUs, ONNX Runtime's U8S8 kernels lose to FP32 on some CPUs): the run's summary says so in one line per
case instead of leaving it to the reader to compare p50 columns. Standard library only.
"""

from __future__ import annotations

from typing import Any


def slower_than_fp32(report: Any, *, tolerance: float = 0.0) -> list[str]:
    """One line per (model, runtime:device, precision) whose p50 is above the FP32 row's of the same model."""
    fp32: dict[tuple[str, str, str], float] = {}
    others: list[tuple[tuple[str, str, str], str, float, str]] = []
    for r in report.results:
        if r.status != "ok" or r.latency is None:
            continue
        key = (r.model, r.runtime, r.device)
        p50 = float(r.latency.stats.p50)
        if r.precision == "fp32":
            fp32.setdefault(key, p50)
        else:
            others.append((key, r.precision, p50, r.artifact))
    lines = []
    for key, precision, p50, artifact in others:
        ref = fp32.get(key)
        if ref is not None and p50 > ref * (1.0 + tolerance):
            lines.append(f"{precision.upper()} was slower than FP32 for {key[0]} on {key[1]}:{key[2]}: p50 "
                         f"{p50:.3g} ms vs {ref:.3g} ms ({p50 / ref:.2f}x, {artifact}); keep FP32 there, or try "
                         "another runtime or quantization preset")
    return lines
