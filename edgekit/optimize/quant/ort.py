"""INT8 Q/DQ ONNX with ONNX Runtime's ``quantize_static``.

The graph is first pre-processed (``quant_pre_process``: shape inference and
ORT's basic optimizations, as ORT's docs ask: optimize before quantizing, not
during), and the nodes to keep in float are found on that pre-processed graph,
so their names match. Weights are always INT8 symmetric; the activation type
depends on where the model will run (:data:`LAYOUTS`):

* ``u8s8`` (ONNX Runtime on an x86 CPU): uint8 asymmetric activations, int8
  weights. The U8S8 kernels use VNNI/AMX; S8S8 Q/DQ measured 2.6-4x slower on
  x86 in ONNX Runtime.
* ``s8s8-symmetric`` (TensorRT): int8 activations *and* weights, both
  symmetric (every zero point 0), which is the only INT8 TensorRT accepts from
  explicit Q/DQ (implicit calibration is deprecated since TRT 10.1, gone in 11);
  biases stay float, since TensorRT's parser refuses an int32 DequantizeLinear.
* ``s8s8`` (ONNX Runtime on an ARM CPU): int8 activations and weights, as ORT's
  ``quantize_static`` documentation recommends for ARM; not measured here.

Calibration ranges are computed once and cached (``calibration_cache_path``),
so re-quantizing with other excluded nodes (accuracy control) reuses them.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import CheckFailed, ExportError
from edgekit.core.lazy import require
from edgekit.optimize.quant.presets import QuantPreset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OrtLayout:
    name: str
    activation_type: str  # "uint8" | "int8"
    weight_type: str
    activation_symmetric: bool
    weight_symmetric: bool
    why: str
    #: int32 Q/DQ biases: ORT's default; TensorRT's parser rejects a DequantizeLinear of int32
    #: (onnx/onnx-tensorrt#850), so the TensorRT layout keeps biases in float
    quantize_bias: bool = True

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": "onnx-qdq",
            "activations": f"{self.activation_type} {'symmetric' if self.activation_symmetric else 'asymmetric'}",
            "weights": f"{self.weight_type} {'symmetric' if self.weight_symmetric else 'asymmetric'} per-channel",
            "biases": "int32 (Q/DQ)" if self.quantize_bias else "float",
            "why": self.why,
        }


LAYOUTS: dict[str, OrtLayout] = {
    "u8s8": OrtLayout(
        "u8s8", "uint8", "int8", False, True,
        "ONNX Runtime on x86 CPUs: U8S8 uses the VNNI/AMX kernels; S8S8 Q/DQ measured 2.6-4x slower",
    ),
    "s8s8-symmetric": OrtLayout(
        "s8s8-symmetric", "int8", "int8", True, True,
        "TensorRT: explicit Q/DQ must be signed INT8 with zero point 0 for activations and weights; "
        "biases stay float (TensorRT rejects int32 DequantizeLinear)",
        quantize_bias=False,
    ),
    "s8s8": OrtLayout(
        "s8s8", "int8", "int8", False, True,
        "ONNX Runtime on ARM CPUs: S8S8, as ONNX Runtime's quantize_static documentation recommends (not measured here)",
    ),
}


class ArrayCalibrationReader:
    """An ORT CalibrationDataReader over preprocessed samples, in the graph's batch size."""

    def __init__(self, x: np.ndarray, input_name: str, batch: int) -> None:
        self.x = x
        self.input_name = input_name
        self.batch = batch
        self._it: Iterator[dict[str, np.ndarray]] | None = None

    def _batches(self) -> Iterator[dict[str, np.ndarray]]:
        for i in range(0, len(self.x), self.batch):
            chunk = self.x[i : i + self.batch]
            if len(chunk) < self.batch:  # a static batch: fill with the first samples
                chunk = np.concatenate([chunk, self.x[: self.batch - len(chunk)]])
            yield {self.input_name: np.ascontiguousarray(chunk, dtype=np.float32)}

    def get_next(self) -> dict[str, np.ndarray] | None:
        if self._it is None:
            self._it = self._batches()
        return next(self._it, None)

    def rewind(self) -> None:
        self._it = None

    def __len__(self) -> int:
        return -(-len(self.x) // self.batch)


class _OrtQuantizationNoise(logging.Filter):
    """Drops the root-logger warnings ONNX Runtime's quantizer emits for every tensor
    (``Axis 1 is out-of-range for weight ...``); kept with ``edgekit -vv``."""

    _dir = f"onnxruntime{os.sep}quantization"

    def filter(self, record: logging.LogRecord) -> bool:
        return self._dir not in record.pathname or log.isEnabledFor(logging.DEBUG)


@contextlib.contextmanager
def quiet_ort_quantizer() -> Iterator[None]:
    root = logging.getLogger()
    f = _OrtQuantizationNoise()
    root.addFilter(f)
    try:
        yield
    finally:
        root.removeFilter(f)


def preprocess_for_quantization(src: Path, dst: Path) -> None:
    """``quant_pre_process``: shape inference + ORT basic optimizations, written to ``dst``."""
    q = require("onnxruntime.quantization", purpose="INT8 quantization with ONNX Runtime")
    with quiet_ort_quantizer():
        try:
            q.quant_pre_process(str(src), str(dst), skip_symbolic_shape=False)
        except Exception as e:  # ORT's optimizer / shape inference raise assorted types
            log.warning("quant_pre_process with symbolic shapes failed (%s); retrying without", e)
            try:
                q.quant_pre_process(str(src), str(dst), skip_symbolic_shape=True)
            except Exception as e2:
                raise ExportError(
                    f"ONNX Runtime cannot pre-process {src.name} for quantization: {type(e2).__name__}: "
                    f"{' '.join(str(e2).split())[:300]}"
                ) from None


#: ONNX Runtime's default smoothing factor for ``CalibMovingAverage``
CALIB_AVERAGING_CONSTANT = 0.01


def quantize_ort(
    pre_path: Path,
    out_path: Path,
    *,
    reader: ArrayCalibrationReader,
    layout: OrtLayout,
    preset: QuantPreset,
    nodes_to_exclude: list[str],
    cache_path: Path,
) -> dict[str, Any]:
    """Quantize ``pre_path`` into ``out_path`` (Q/DQ); returns the recipe as recorded."""
    q = require("onnxruntime.quantization", purpose="INT8 quantization with ONNX Runtime")
    qtype = {"uint8": q.QuantType.QUInt8, "int8": q.QuantType.QInt8}
    extra = {
        "ActivationSymmetric": layout.activation_symmetric,
        "WeightSymmetric": layout.weight_symmetric,
        "QuantizeBias": layout.quantize_bias,
    }
    if preset.matmul_const_b_only:
        extra["MatMulConstBOnly"] = True
    # Activation ranges from a moving average of the per-batch min/max, not their global extremes: one
    # calibration image with outlying activations otherwise widens a range for every image. Measured on
    # a MobileNetV3-small trained on the embedded data (2,000 held-out images): global MinMax gave 97.1 %
    # top-1 agreement with 128 calibration images and 94.8 % with 300 (more images, more outliers); the
    # moving average gave 97.8 % with either.
    extra["CalibMovingAverage"] = True
    extra["CalibMovingAverageConstant"] = CALIB_AVERAGING_CONSTANT
    reader.rewind()
    with quiet_ort_quantizer():
        try:
            q.quantize_static(
                str(pre_path),
                str(out_path),
                reader,
                quant_format=q.QuantFormat.QDQ,
                per_channel=preset.per_channel,
                reduce_range=False,
                activation_type=qtype[layout.activation_type],
                weight_type=qtype[layout.weight_type],
                nodes_to_exclude=list(nodes_to_exclude),
                calibrate_method=q.CalibrationMethod.MinMax,
                extra_options=extra,
                calibration_cache_path=str(cache_path),
            )
        except (ValueError, RuntimeError, KeyError, TypeError) as e:
            raise ExportError(
                f"ONNX Runtime quantize_static failed on {pre_path.name}: {type(e).__name__}: {' '.join(str(e).split())[:300]}"
            ) from None
    return {
        "tool": "onnxruntime.quantization.quantize_static",
        "quant_format": "QDQ",
        "calibrate_method": "MinMax (moving average of per-batch ranges)",
        "per_channel": preset.per_channel,
        "reduce_range": False,
        "activation_type": layout.activation_type,
        "weight_type": layout.weight_type,
        "extra_options": extra,
    }


# -- reading a Q/DQ graph back -----------------------------------------------------------------

_INT_TYPES = {2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32", 21: "uint4", 22: "int4"}


def qdq_report(model: Any) -> dict[str, Any]:
    """Activation and weight quantization as the graph declares it (types, zero points, axes).

    A DequantizeLinear of an initializer is a **weight** when it feeds the
    weight input of a Conv/Gemm/MatMul, a **bias** when it is int32, and
    otherwise a quantized **constant** (a tensor such as a position-bias table
    that is quantized like an activation). Activations are the QuantizeLinear nodes.
    """
    onnx = require("onnx")
    numpy_helper = onnx.numpy_helper
    inits = {t.name: t for t in model.graph.initializer}
    weight_inputs = {n.input[1] for n in model.graph.node
                     if n.op_type in ("Conv", "Gemm", "MatMul", "ConvTranspose") and len(n.input) > 1}

    def zp_values(node: Any) -> np.ndarray | None:
        if len(node.input) < 3 or node.input[2] not in inits:
            return None
        return numpy_helper.to_array(inits[node.input[2]])

    def zp_type(node: Any) -> str:
        if len(node.input) < 3 or node.input[2] not in inits:
            return "uint8"  # the ONNX default when no zero point is given
        t = inits[node.input[2]]
        return _INT_TYPES.get(t.data_type, str(t.data_type))

    acts: dict[str, int] = {}
    consts: dict[str, int] = {}
    weights: dict[str, int] = {}
    act_zero = const_zero = w_zero = True
    per_channel = per_tensor = biases = 0
    for n in model.graph.node:
        if n.op_type == "QuantizeLinear":
            acts[zp_type(n)] = acts.get(zp_type(n), 0) + 1
            zp = zp_values(n)
            act_zero &= zp is None or not np.any(zp)
        elif n.op_type == "DequantizeLinear" and n.input[0] in inits:
            dtype = _INT_TYPES.get(inits[n.input[0]].data_type, str(inits[n.input[0]].data_type))
            zp = zp_values(n)
            if dtype == "int32":
                biases += 1
            elif n.output[0] in weight_inputs:
                weights[dtype] = weights.get(dtype, 0) + 1
                w_zero &= zp is None or not np.any(zp)
                scale = inits.get(n.input[1])
                if scale is not None and int(np.prod(scale.dims or [1])) > 1:
                    per_channel += 1
                else:
                    per_tensor += 1
            else:
                consts[dtype] = consts.get(dtype, 0) + 1
                const_zero &= zp is None or not np.any(zp)
    return {
        "activation_quantizers": sum(acts.values()),
        "activation_types": acts,
        "activation_zero_points_all_zero": act_zero,
        "weight_tensors": sum(weights.values()),
        "weight_types": weights,
        "weight_zero_points_all_zero": w_zero,
        "weights_per_channel": per_channel,
        "weights_per_tensor": per_tensor,
        "int32_biases": biases,
        "quantized_constants": sum(consts.values()),
        "constant_types": consts,
        "constant_zero_points_all_zero": const_zero,
    }


def check_layout(report: dict[str, Any], layout: OrtLayout) -> None:
    """Raise CheckFailed when the written graph does not have the layout it was asked for."""
    problems = []
    if report["activation_quantizers"] == 0:
        problems.append("no activation was quantized")
    if set(report["activation_types"]) - {layout.activation_type}:
        problems.append(f"activation types {report['activation_types']} (wanted {layout.activation_type})")
    if set(report["weight_types"]) - {layout.weight_type}:
        problems.append(f"weight types {report['weight_types']} (wanted {layout.weight_type})")
    # ONNX Runtime quantizes a constant input of Mul/Add like a weight or like an activation
    if set(report["constant_types"]) - {layout.activation_type, layout.weight_type}:
        problems.append(f"quantized constant types {report['constant_types']} "
                        f"(wanted {layout.activation_type} or {layout.weight_type})")
    if layout.activation_symmetric and not report["activation_zero_points_all_zero"]:
        problems.append("an activation zero point is not 0")
    if layout.activation_symmetric and not report["constant_zero_points_all_zero"]:
        problems.append("a quantized constant's zero point is not 0")
    if layout.weight_symmetric and not report["weight_zero_points_all_zero"]:
        problems.append("a weight zero point is not 0")
    if not layout.quantize_bias and report["int32_biases"]:
        problems.append(f"{report['int32_biases']} int32 bias(es) are quantized")
    if problems:
        raise CheckFailed(
            f"the quantized graph does not have the {layout.name} layout: " + "; ".join(problems),
            hint="nothing was written; report this with the model name",
        )


def float_nodes(model: Any) -> tuple[list[str], list[str]]:
    """(quantized, float) names of the compute nodes of a Q/DQ graph.

    A node with weights (Conv, Gemm, MatMul with an initializer) is quantized
    when its weight comes from a DequantizeLinear; another node when ONNX
    Runtime can quantize its op type at all (HardSigmoid or ReduceMean, say,
    always run in float between a DequantizeLinear and a QuantizeLinear), all
    its activation inputs come from DequantizeLinear nodes and an output feeds
    a QuantizeLinear (a Q/DQ "node unit"). A node excluded from quantization may
    still read a dequantized tensor that other consumers needed: it computes
    in float all the same.
    """
    registry = require("onnxruntime.quantization.registry", purpose="reading a Q/DQ graph")
    quantizable = set(registry.QLinearOpsRegistry) | set(registry.QDQRegistry)
    inits = {t.name for t in model.graph.initializer}
    dq_nodes = {n.output[0]: n for n in model.graph.node if n.op_type == "DequantizeLinear"}
    q_inputs = {n.input[0] for n in model.graph.node if n.op_type == "QuantizeLinear"}
    const_out = {o for n in model.graph.node if n.op_type == "Constant" for o in n.output}
    quantized, floating = [], []
    for n in model.graph.node:
        if n.op_type in ("QuantizeLinear", "DequantizeLinear", "Constant"):
            continue
        weight_dq = [dq_nodes[i] for i in n.input if i in dq_nodes and dq_nodes[i].input[0] in inits]
        if n.op_type in ("Conv", "Gemm", "MatMul", "ConvTranspose") and len(n.input) > 1 and (
            n.input[1] in inits or n.input[1] in const_out or n.input[1] in dq_nodes and dq_nodes[n.input[1]].input[0] in inits
        ):
            is_q = n.input[1] in dq_nodes
        else:
            acts = [i for i in n.input if i and i not in inits and i not in const_out
                    and not (i in dq_nodes and dq_nodes[i] in weight_dq)]
            is_q = (n.op_type in quantizable and bool(acts) and all(i in dq_nodes for i in acts)
                    and any(o in q_inputs for o in n.output))
        (quantized if is_q else floating).append(n.name)
    return quantized, floating
