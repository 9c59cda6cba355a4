"""What an ONNX file declares, read with ``onnx`` only (no runtime, no torch).

Backends use it for two honest facts that do not depend on the runtime:

* the artifact's precision (float32, float16, bfloat16 weights, or an INT8
  graph with Q/DQ or QOperator nodes), and
* the graph's declared inputs and outputs, with symbolic dimensions kept as
  their names (runtimes such as OpenVINO drop those names).

Weights stored as external data are not read: only their declared dtypes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.specs import TensorSpec

#: nodes that make a graph an explicitly quantized (QDQ) model
QDQ_OPS = frozenset({"QuantizeLinear", "DequantizeLinear"})
#: integer operators of the "QOperator" format
QOPERATOR_OPS = frozenset(
    {
        "QLinearConv",
        "QLinearMatMul",
        "QLinearAdd",
        "QLinearMul",
        "QLinearSigmoid",
        "QLinearLeakyRelu",
        "QLinearAveragePool",
        "QLinearGlobalAveragePool",
        "QLinearConcat",
        "QLinearSoftmax",
        "QGemm",
        "ConvInteger",
        "MatMulInteger",
        "DynamicQuantizeLinear",
    }
)

# onnx.TensorProto.DataType values -> numpy dtype names (bfloat16 has no numpy dtype)
_ONNX_DTYPE: dict[int, str] = {
    1: "float32",
    2: "uint8",
    3: "int8",
    4: "uint16",
    5: "int16",
    6: "int32",
    7: "int64",
    8: "str",
    9: "bool",
    10: "float16",
    11: "float64",
    12: "uint32",
    13: "uint64",
    16: "bfloat16",
    17: "float8e4m3fn",
    19: "float8e5m2",
    21: "uint4",
    22: "int4",
}

_ORT_DTYPE: dict[str, str] = {
    "float": "float32",
    "float16": "float16",
    "double": "float64",
    "bfloat16": "bfloat16",
    "int8": "int8",
    "uint8": "uint8",
    "int16": "int16",
    "uint16": "uint16",
    "int32": "int32",
    "uint32": "uint32",
    "int64": "int64",
    "uint64": "uint64",
    "bool": "bool",
    "string": "str",
}


def ort_type_to_dtype(type_str: str) -> str:
    """``'tensor(float)'`` -> ``'float32'`` (unknown types are returned as written)."""
    inner = type_str[len("tensor(") : -1] if type_str.startswith("tensor(") else type_str
    return _ORT_DTYPE.get(inner, inner)


def onnx_dtype_name(elem_type: int) -> str:
    return _ONNX_DTYPE.get(int(elem_type), f"onnx_type_{int(elem_type)}")


@dataclass(frozen=True)
class GraphInfo:
    """The parts of an ONNX graph backends care about."""

    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    op_counts: dict[str, int]
    weight_dtypes: dict[str, int]  # dtype name -> number of float/int initializer elements
    opset: int | None

    @property
    def qdq_nodes(self) -> int:
        return sum(self.op_counts.get(op, 0) for op in QDQ_OPS)

    @property
    def qoperator_nodes(self) -> int:
        return sum(self.op_counts.get(op, 0) for op in QOPERATOR_OPS)

    @property
    def is_quantized(self) -> bool:
        return self.qdq_nodes > 0 or self.qoperator_nodes > 0

    @property
    def precision(self) -> str:
        """The artifact's precision: int8, fp16, bf16 or fp32."""
        if self.is_quantized:
            return "int8"
        floats = {k: v for k, v in self.weight_dtypes.items() if k in ("float32", "float16", "bfloat16", "float64")}
        if floats:
            top = max(floats, key=lambda k: floats[k])
            return {"float16": "fp16", "bfloat16": "bf16"}.get(top, "fp32")
        in_dtypes = {s.dtype for s in self.inputs}
        if "float16" in in_dtypes:
            return "fp16"
        return "fp32"

    def to_json(self) -> dict[str, Any]:
        return {
            "precision": self.precision,
            "qdq_nodes": self.qdq_nodes,
            "qoperator_nodes": self.qoperator_nodes,
            "opset": self.opset,
        }


def _dims(type_proto: Any) -> tuple[int | str, ...]:
    out: list[int | str] = []
    for i, d in enumerate(type_proto.tensor_type.shape.dim):
        if d.HasField("dim_value"):
            out.append(int(d.dim_value))
        elif d.HasField("dim_param") and d.dim_param:
            out.append(str(d.dim_param))
        else:
            out.append(f"?{i}")
    return tuple(out)


def _spec(value_info: Any) -> TensorSpec:
    return TensorSpec(
        name=value_info.name,
        shape=_dims(value_info.type),
        dtype=onnx_dtype_name(value_info.type.tensor_type.elem_type),
    )


def read_graph_info(path: str | Path) -> GraphInfo:
    """Read an ONNX file's I/O, op counts and weight dtypes (external data not loaded)."""
    p = Path(path)
    if not p.is_file():
        raise UsageError(f"ONNX file {p} does not exist")
    from edgekit.core.lazy import require

    onnx = require("onnx", purpose="reading an ONNX graph")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except Exception as e:  # onnx raises DecodeError / ValueError / OSError depending on the damage
        raise ArtifactError(f"{p} is not a readable ONNX model: {type(e).__name__}: {e}") from None
    graph = model.graph
    init_names = {t.name for t in graph.initializer}
    ops: Counter[str] = Counter()
    _count_ops(graph, ops)
    weights: Counter[str] = Counter()
    for t in graph.initializer:
        n = 1
        for d in t.dims:
            n *= int(d)
        weights[onnx_dtype_name(t.data_type)] += n
    opset = next((int(o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")), None)
    return GraphInfo(
        inputs=tuple(_spec(v) for v in graph.input if v.name not in init_names),
        outputs=tuple(_spec(v) for v in graph.output),
        op_counts=dict(ops),
        weight_dtypes=dict(weights),
        opset=opset,
    )


def _count_ops(graph: Any, ops: Counter[str]) -> None:
    for node in graph.node:
        ops[node.op_type] += 1
        for attr in node.attribute:  # subgraphs (If / Loop / Scan)
            if attr.type == 5:  # GRAPH
                _count_ops(attr.g, ops)
            elif attr.type == 10:  # GRAPHS
                for g in attr.graphs:
                    _count_ops(g, ops)
