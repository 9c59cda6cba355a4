"""Parameters and MACs of an ONNX model, read from the graph itself.

``profile_onnx`` needs only numpy and onnx, so it runs on a device, and it
works on every artifact edgekit writes: FP32, FP16 (weights behind ``Cast``),
INT8 in Q/DQ form (weights behind ``DequantizeLinear``), INT8 in operator form
(QLinearConv, QLinearMatMul, ConvInteger, MatMulInteger), and pruned models
(their smaller tensors simply count less).

* ``params`` is defined in :mod:`edgekit.graph.params`: the learned values the
  graph stores, each counted once. Exporters fold BatchNormalization into the
  convolution before it, which stores C fewer values per BN than torch counts
  (gamma and beta become one bias); see that module for why we do not guess
  them back, and for the expanded-table rule.
* ``macs`` is defined in :mod:`edgekit.graph.macs`: multiply-accumulates of
  the dot-product ops (Conv, Gemm, MatMul including attention, Einsum and their
  quantized forms) for one run of the graph with the dynamic batch dimension
  set to ``batch`` (default 1: MACs per image).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import onnx
import onnx.inliner
from google.protobuf.message import DecodeError
from onnx.external_data_helper import load_external_data_for_model

from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.specs import TensorSpec
from edgekit.graph import macs as _macs
from edgekit.graph import params as _params
from edgekit.graph import shapes as _shapes
from edgekit.graph.contrib import sorted_nodes

log = logging.getLogger(__name__)

ModelLike = onnx.ModelProto | str | Path


@dataclass(frozen=True)
class NodeProfile:
    """One node's share: MACs and the parameters it reads."""

    name: str
    op_type: str
    macs: int | None
    params: int

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "op_type": self.op_type, "macs": self.macs, "params": self.params}


@dataclass(frozen=True)
class GraphProfile:
    """What an ONNX graph stores and computes. See the module docstring."""

    params: int
    params_stored: int
    params_by_dtype: dict[str, int]
    weight_bytes: int
    macs: int
    macs_by_op_type: dict[str, int]
    macs_complete: bool
    batch: int
    op_counts: dict[str, int]
    num_nodes: int
    opset: int | None
    opsets: dict[str, int]
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    file_size_bytes: int | None
    producer: str = ""
    notes: tuple[str, ...] = ()
    nodes: tuple[NodeProfile, ...] = field(default=())

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9

    def to_json(self) -> dict[str, Any]:
        d: dict[str, Any] = {
            "params": self.params,
            "params_stored": self.params_stored,
            "params_by_dtype": dict(self.params_by_dtype),
            "weight_bytes": self.weight_bytes,
            "macs": self.macs,
            "gmacs": round(self.gmacs, 6),
            "macs_by_op_type": dict(self.macs_by_op_type),
            "macs_complete": self.macs_complete,
            "batch": self.batch,
            "op_counts": dict(self.op_counts),
            "num_nodes": self.num_nodes,
            "opset": self.opset,
            "opsets": dict(self.opsets),
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "file_size_bytes": self.file_size_bytes,
            "producer": self.producer,
            "notes": list(self.notes),
        }
        if self.nodes:
            d["nodes"] = [n.to_json() for n in self.nodes]
        return d

    @classmethod
    def from_json(cls, d: Mapping[str, Any]) -> GraphProfile:
        return cls(
            params=int(d["params"]),
            params_stored=int(d.get("params_stored", d["params"])),
            params_by_dtype={str(k): int(v) for k, v in d.get("params_by_dtype", {}).items()},
            weight_bytes=int(d.get("weight_bytes", 0)),
            macs=int(d["macs"]),
            macs_by_op_type={str(k): int(v) for k, v in d.get("macs_by_op_type", {}).items()},
            macs_complete=bool(d.get("macs_complete", True)),
            batch=int(d.get("batch", 1)),
            op_counts={str(k): int(v) for k, v in d.get("op_counts", {}).items()},
            num_nodes=int(d.get("num_nodes", 0)),
            opset=d.get("opset"),
            opsets={str(k): int(v) for k, v in d.get("opsets", {}).items()},
            inputs=tuple(TensorSpec.from_json(t) for t in d.get("inputs", ())),
            outputs=tuple(TensorSpec.from_json(t) for t in d.get("outputs", ())),
            file_size_bytes=d.get("file_size_bytes"),
            producer=d.get("producer", ""),
            notes=tuple(d.get("notes", ())),
            nodes=tuple(
                NodeProfile(n["name"], n["op_type"], n.get("macs"), int(n.get("params", 0))) for n in d.get("nodes", ())
            ),
        )


def load_model(path: str | Path) -> tuple[onnx.ModelProto, int]:
    """Load an ONNX file with its external data, and its size on disk with that data.

    Raises :class:`ArtifactError` for a missing file, a file that is not an
    ONNX model, or missing external data.
    """
    p = Path(path)
    if not p.exists():
        raise ArtifactError(f"{p} does not exist", hint="give an .onnx file or an artifact directory")
    if not p.is_file():
        raise ArtifactError(f"{p} is not a file", hint="give an .onnx file or an artifact directory")
    try:
        model = onnx.load(str(p), load_external_data=False)
    except (DecodeError, RuntimeError, ValueError, UnicodeDecodeError) as e:
        raise ArtifactError(f"{p} is not an ONNX model ({type(e).__name__}: {e})") from None
    if model.ir_version <= 0 or not model.HasField("graph") or len(model.graph.node) == 0:
        raise ArtifactError(f"{p} is not an ONNX model (no graph nodes)", hint="give the model.onnx of an artifact")
    size = p.stat().st_size
    locations = sorted(
        {kv.value for t in _tensors(model.graph) for kv in t.external_data if kv.key == "location"}
    )
    for loc in locations:
        f = p.parent / loc
        if Path(loc).is_absolute() or ".." in Path(loc).parts:
            raise ArtifactError(f"{p} points its external data outside its directory ({loc!r})")
        if not f.is_file():
            raise ArtifactError(f"{p} keeps its weights in {loc}, which is missing", hint="copy it beside the model")
        size += f.stat().st_size
    if locations:
        try:
            load_external_data_for_model(model, str(p.parent))
        except (OSError, ValueError, onnx.checker.ValidationError) as e:
            raise ArtifactError(f"cannot read the external data of {p}: {e}") from None
    return model, size


def _tensors(graph: onnx.GraphProto) -> list[onnx.TensorProto]:
    return list(graph.initializer) + [
        a.t for n in graph.node if n.op_type == "Constant" for a in n.attribute if a.name == "value"
    ]


def _key(node: onnx.NodeProto) -> str:
    return node.op_type if node.domain in ("", "ai.onnx") else f"{node.domain}.{node.op_type}"


def profile_onnx(
    model: ModelLike,
    *,
    batch: int = 1,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    per_node: bool = False,
) -> GraphProfile:
    """Profile an ONNX model: parameters, MACs, ops, inputs and outputs.

    ``model`` is a ``ModelProto`` or the path of an .onnx file (its external
    data is loaded). ``batch`` replaces a dynamic leading input dimension;
    ``input_shapes`` gives full shapes for inputs with other dynamic
    dimensions. ``per_node`` adds one :class:`NodeProfile` per node that has
    MACs or parameters.
    """
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise UsageError(f"batch must be a positive integer, got {batch!r}")
    size: int | None = None
    if isinstance(model, (str, Path)):
        model, size = load_model(model)
    elif not isinstance(model, onnx.ModelProto):
        raise UsageError(f"profile_onnx takes an onnx.ModelProto or a path, got {type(model).__name__}")
    notes: list[str] = []
    if len(model.functions):
        model = onnx.inliner.inline_local_functions(model)
        notes.append("local functions inlined")
    graph = model.graph
    nodes, in_order = sorted_nodes(graph)
    if not in_order:
        notes.append("the graph's nodes were not in topological order; profiled in sorted order")
    inputs, outputs = _shapes.io_specs(graph)
    shape_result = _shapes.infer(model, nodes=nodes, batch=batch, input_shapes=input_shapes)
    notes.extend(shape_result.notes)
    counted = _params.count_params(graph, nodes)
    notes.extend(counted.notes)

    macs_by_op: Counter[str] = Counter()
    unresolved: list[str] = []
    node_rows: list[NodeProfile] = []
    subgraphs = 0
    for node in nodes:
        if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
            subgraphs += 1
        m = _macs.node_macs(node, shape_result.shapes) if node.domain in ("", "ai.onnx", "com.microsoft") else 0
        if m is None:
            unresolved.append(node.name or node.output[0])
        elif m:
            macs_by_op[_key(node)] += m
        if per_node:
            p = counted.params_by_node.get(node.name or node.output[0], 0)
            if m is None or m or p:
                node_rows.append(NodeProfile(node.name or node.output[0], _key(node), m, p))
    if unresolved:
        notes.append(
            f"MACs of {len(unresolved)} node(s) not counted, their shapes are unknown: "
            + ", ".join(unresolved[:5])
            + (", ..." if len(unresolved) > 5 else "")
        )
    if subgraphs:
        notes.append(f"{subgraphs} node(s) with subgraphs (If/Loop/Scan): their bodies are not profiled")

    opsets = {(o.domain or "ai.onnx"): int(o.version) for o in model.opset_import}
    first = shape_result.input_shapes.get(inputs[0].name) if inputs else None
    return GraphProfile(
        params=counted.params,
        params_stored=counted.params_stored,
        params_by_dtype=counted.params_by_dtype,
        weight_bytes=counted.weight_bytes,
        macs=int(sum(macs_by_op.values())),
        macs_by_op_type=dict(macs_by_op.most_common()),
        macs_complete=not unresolved,
        batch=int(first[0]) if first else batch,
        op_counts=dict(Counter(_key(n) for n in graph.node).most_common()),
        num_nodes=len(graph.node),
        opset=opsets.get("ai.onnx"),
        opsets=opsets,
        inputs=inputs,
        outputs=outputs,
        file_size_bytes=size,
        producer=" ".join(x for x in (model.producer_name, model.producer_version) if x),
        notes=tuple(notes),
        nodes=tuple(node_rows),
    )
