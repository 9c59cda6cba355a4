"""OpenVINO backend: :mod:`.runner` (``OpenVINORunner``), :mod:`.build` (ONNX -> OpenVINO IR artifact) and its
capabilities (``BACKEND``).

Importing this package imports no ``openvino``.
"""

from __future__ import annotations

from typing import Any

from edgekit.core.manifest import Manifest
from edgekit.core.specs import Precision
from edgekit.runtime.backend import Backend, BatchMode, OpenRequest

FORMAT = "openvino-ir"
#: edgekit precision -> the inference precision OpenVINO is to run (int8 layers run in int8 whatever the
#: hint; the layers around them stay in f32)
RUN_PRECISION: dict[str, Precision] = {"fp32": Precision.FP32, "fp16": Precision.FP16, "bf16": Precision.BF16,
                                       "int8": Precision.FP32, "int8+bf16": Precision.BF16}
#: edgekit precision -> OpenVINO INFERENCE_PRECISION_HINT
INFERENCE_PRECISION: dict[str, str] = {k: {"fp32": "f32", "fp16": "f16", "bf16": "bf16"}[v]
                                       for k, v in RUN_PRECISION.items()}
#: INT8 with the float layers in bf16: what benchmark_app runs by default on a CPU with native bf16
#: (edgekit's plain ``int8`` row forces f32 for them); a candidate row only where the CPU has it
MIXED = {"int8": ("int8+bf16", "CPU", ("avx512_bf16", "amx_bf16", "bf16"))}


def _options(r: OpenRequest) -> dict[str, Any]:
    """The inference precision explicitly (never OpenVINO's silent bf16 default), except for an IR that
    records the one it was built for (:func:`_manifest_defaults` applies that)."""
    options: dict[str, Any] = {"device": r.spec.device, "hint": "latency", "streams": r.streams,
                               "threads": r.threads, "batch": r.batch}
    mixed = r.precision in {label for label, _, _ in MIXED.values()}
    if mixed or r.manifest is None or r.manifest.format != FORMAT or r.manifest.inference_precision is None:
        options["precision"] = INFERENCE_PRECISION[r.precision]
    return options


def _manifest_defaults(m: Manifest) -> dict[str, Any]:
    """An IR built by ``edgekit build`` runs on the device and at the inference precision it records."""
    if m.format != FORMAT:
        return {}
    precision = INFERENCE_PRECISION[m.inference_precision] if m.inference_precision is not None else None
    return {k: v for k, v in (("precision", precision), ("device", m.device)) if v is not None}


BACKEND = Backend(
    name="openvino", title="OpenVINO", runner="edgekit.runtime.openvino.runner:OpenVINORunner",
    requires="openvino", extra="openvino", aliases=("ov",), formats=("onnx", FORMAT),
    format_aliases={"ir": FORMAT, "openvino": FORMAT}, devices=("CPU", "GPU", "NPU", "AUTO"),
    versions=("openvino",), rank=20, batching=BatchMode.RESHAPE, onnx_precisions=("bf16", "fp16"),
    mixed_precisions=MIXED,
    options=_options, manifest_defaults=_manifest_defaults,
    builder="edgekit.runtime.openvino.build", build_precisions=("fp32", "fp16", "bf16", "int8"),
    # fp32 IR: measured ~6e-7; fp16-compressed IR run at f32: ~8e-4; INT8 (same Q/DQ graph, two runtimes
    # rounding differently at quantization boundaries): ~2e-2, all on mobilenetv3_small_100
    verify_rel_tol={"fp32": 1e-4, "bf16": 1e-4, "fp16": 1e-2, "int8": 5e-2},
)
