"""FP16 artifacts: ONNX with FP32 inputs/outputs, or an OpenVINO IR with FP16 weights.

* ONNX: every float tensor and initializer becomes float16 and Cast nodes keep
  the graph's inputs and outputs float32 (``keep_io_types``), so the device
  feeds the same preprocessed FP32 tensor as for the parent. The converter is
  ONNX Runtime's ``onnxruntime.transformers.float16`` (a maintained copy of
  onnxconverter-common's, with Resize/GroupNorm fixes): no extra package.
  Ops that must stay FP32 (its ``DEFAULT_OP_BLOCK_LIST``: Range, TopK, Resize
  scales and the like) are kept in FP32 with casts around them.
* OpenVINO: ``ov.save_model(compress_to_fp16=True)`` at a static batch. The
  device decides the compute precision (``f16`` on GPUs/NPUs); an x86 CPU
  decompresses the weights and computes in f32 (or bf16 if asked).

The caller checks parity against the FP32 parent on real images.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

from edgekit.core.errors import ExportError
from edgekit.core.lazy import require

log = logging.getLogger(__name__)


def _float16_module() -> Any:
    """ONNX Runtime's converter, imported the way ORT itself imports it.

    ``onnxruntime/transformers/__init__.py`` appends its own directory to ``sys.path`` because
    its modules import each other as top-level modules (``onnx_utils``: ``from fusion_utils import
    ...``), and ``onnxruntime.quantization`` imports ``onnxruntime.transformers.onnx_utils``. The
    entry must stay: removing it (as this function once did) made a later first import of
    ``onnxruntime.quantization`` in the same process fail (FP16 then INT8 in one run).
    """
    require("onnxruntime", purpose="FP16 conversion of ONNX models")
    return importlib.import_module("onnxruntime.transformers.float16")


def _toposort(graph: Any) -> None:
    """Order ``graph.node`` topologically (the converter appends its input Casts at the end)."""
    ready = {i.name for i in graph.input} | {t.name for t in graph.initializer} | {""}
    pending = list(graph.node)
    ordered = []
    while pending:
        rest = []
        for n in pending:
            if all(i in ready for i in n.input):
                ordered.append(n)
                ready.update(n.output)
            else:
                rest.append(n)
        if len(rest) == len(pending):
            raise ExportError(f"the FP16 graph has a cycle or a dangling input at node {rest[0].name!r}")
        pending = rest
    del graph.node[:]
    graph.node.extend(ordered)


def convert_onnx_fp16(src: Path, dst: Path) -> dict[str, Any]:
    """Write the FP16 version of ``src`` to ``dst`` (FP32 inputs and outputs)."""
    onnx = require("onnx", purpose="FP16 conversion")
    f16 = _float16_module()
    model = onnx.load(str(src))
    try:
        converted = f16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    except Exception as e:  # the converter raises ValueError / AssertionError / onnx errors
        raise ExportError(f"FP16 conversion of {src.name} failed: {type(e).__name__}: {' '.join(str(e).split())[:300]}") from None
    _toposort(converted.graph)
    try:
        onnx.checker.check_model(converted)
    except onnx.checker.ValidationError as e:
        raise ExportError(f"the FP16 graph of {src.name} is invalid: {' '.join(str(e).split())[:300]}") from None
    onnx.save(converted, str(dst))
    casts = sum(1 for n in converted.graph.node if n.op_type == "Cast")
    return {
        "tool": "onnxruntime.transformers.float16.convert_float_to_float16",
        "keep_io_types": True,
        "op_block_list": list(f16.DEFAULT_OP_BLOCK_LIST),
        "cast_nodes": casts,
        "io_dtype": "float32",
    }


def convert_openvino_fp16(model: Any, stage: Path, *, model_xml: str = "model.xml") -> dict[str, Any]:
    """Save an (already static-shaped) OpenVINO model with FP16-compressed weights."""
    ov = require("openvino", purpose="FP16 OpenVINO IR")
    ov.save_model(model, str(stage / model_xml), compress_to_fp16=True)
    return {
        "tool": f"openvino {ov.get_version()} save_model",
        "compress_to_fp16": True,
        "inference_precision": "f16",
        "note": "x86 CPUs decompress FP16 weights and compute in f32 (or bf16 when asked)",
    }
