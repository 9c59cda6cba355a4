"""Shape inference for profiling: concrete shapes for every tensor of a graph.

The graph is copied without its large initializers (they become typed graph
inputs, so inference sees their shapes but never their bytes; this keeps it
fast and under protobuf's 2 GiB limit), symbolic or unknown input dimensions
are replaced by concrete values (the leading dimension by ``batch``, others
from ``input_shapes``), stale ``value_info`` and output shapes are dropped (the
dynamo exporter stores symbolic ones), and :func:`onnx.shape_inference.infer_shapes`
runs with ``data_prop=True`` so that shapes computed at run time (Shape ->
Gather -> Concat -> Reshape) resolve too.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import onnx
from onnx import TensorProto

from edgekit.core.errors import UsageError
from edgekit.core.specs import TensorSpec
from edgekit.graph.contrib import standin
from edgekit.graph.fold import fold_shape_values

log = logging.getLogger(__name__)

Shape = tuple[int | None, ...]

#: integer initializers up to this many elements keep their values in the
#: inference copy: they are shape/axes constants that data propagation needs
_KEEP_VALUES_MAX = 64
#: rounds of folding shape computations and inferring again
_MAX_FOLD_ROUNDS = 64

_DTYPE_NAMES: dict[int, str] = {
    TensorProto.FLOAT: "float32",
    TensorProto.DOUBLE: "float64",
    TensorProto.FLOAT16: "float16",
    TensorProto.BFLOAT16: "bfloat16",
}


def dtype_name(data_type: int) -> str:
    """numpy-style name of an ONNX element type (``float32``, ``int8``, ``float8e4m3fn``)."""
    if data_type in _DTYPE_NAMES:
        return _DTYPE_NAMES[data_type]
    try:
        return TensorProto.DataType.Name(data_type).lower()
    except ValueError:
        return f"type{data_type}"


def _value_info_spec(vi: onnx.ValueInfoProto) -> TensorSpec:
    tt = vi.type.tensor_type
    dims: list[int | str] = []
    for d in tt.shape.dim:
        if d.HasField("dim_value"):
            dims.append(int(d.dim_value))
        else:
            dims.append(d.dim_param or "?")
    return TensorSpec(name=vi.name, shape=tuple(dims), dtype=dtype_name(tt.elem_type))


def io_specs(graph: onnx.GraphProto) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """The graph's real inputs (initializers excluded) and outputs, shapes as declared."""
    init_names = {t.name for t in graph.initializer}
    inputs = tuple(_value_info_spec(v) for v in graph.input if v.name not in init_names)
    outputs = tuple(_value_info_spec(v) for v in graph.output)
    return inputs, outputs


@dataclass(frozen=True)
class ShapeResult:
    """Inferred shapes (None for an unknown dimension) and what was substituted."""

    shapes: dict[str, Shape]
    input_shapes: dict[str, tuple[int, ...]]
    notes: tuple[str, ...]


def _concrete_input_shape(
    spec: TensorSpec, *, batch: int, override: Sequence[int] | None, notes: list[str]
) -> tuple[int, ...] | None:
    if override is not None:
        shape = tuple(int(d) for d in override)
        if len(shape) != len(spec.shape) or any(d <= 0 for d in shape):
            raise UsageError(
                f"input_shapes[{spec.name!r}]={list(override)} does not fit input {spec.name} of shape {list(spec.shape)}",
                hint="give one positive size per dimension",
            )
        for declared, given in zip(spec.shape, shape):
            if isinstance(declared, int) and declared > 0 and declared != given:
                raise UsageError(
                    f"input_shapes[{spec.name!r}]={list(shape)} contradicts the static shape {list(spec.shape)}",
                )
        return shape
    out: list[int] = []
    for axis, d in enumerate(spec.shape):
        if isinstance(d, int) and d > 0:
            out.append(d)
        elif axis == 0:
            out.append(batch)
            notes.append(f"input {spec.name}: dynamic dimension {d!r} (axis 0) set to batch={batch}")
        else:
            notes.append(
                f"input {spec.name}: dynamic dimension {d!r} at axis {axis} is unknown; "
                "MACs of the nodes that depend on it are not counted (pass input_shapes)"
            )
            return None
    return tuple(out)


def _set_shape(vi: onnx.ValueInfoProto, shape: tuple[int, ...]) -> None:
    tshape = vi.type.tensor_type.shape
    del tshape.dim[:]
    for d in shape:
        tshape.dim.add().dim_value = int(d)


def _inference_copy(
    model: onnx.ModelProto, concrete: Mapping[str, tuple[int, ...]], nodes: Sequence[onnx.NodeProto]
) -> onnx.ModelProto:
    """A light copy of ``model`` for shape inference (see the module docstring)."""
    light = onnx.ModelProto()
    light.ir_version = model.ir_version
    light.opset_import.extend(model.opset_import)
    light.functions.extend(model.functions)
    g, src = light.graph, model.graph
    g.name = src.name
    for node in nodes:
        replaced = standin(node)
        if replaced is None:
            g.node.append(node)
        else:
            g.node.extend(replaced[0])
            g.initializer.extend(replaced[1])
    init_names = set()
    for t in src.initializer:
        init_names.add(t.name)
        numel = 1
        for d in t.dims:
            numel *= d
        small_int = t.data_type in (TensorProto.INT64, TensorProto.INT32) and numel <= _KEEP_VALUES_MAX
        if small_int and t.data_location != TensorProto.EXTERNAL:
            g.initializer.append(t)
        else:
            g.input.append(onnx.helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    for vi in src.input:
        if vi.name in init_names:
            continue
        new = g.input.add()
        new.CopyFrom(vi)
        if vi.name in concrete:
            _set_shape(new, concrete[vi.name])
    for vi in src.output:  # keep the element type, drop the (possibly symbolic) shape
        out = g.output.add()
        out.name = vi.name
        if vi.type.HasField("tensor_type"):
            out.type.tensor_type.elem_type = vi.type.tensor_type.elem_type
    return light


def _shape_of(vi: onnx.ValueInfoProto) -> Shape | None:
    if not vi.type.HasField("tensor_type") or not vi.type.tensor_type.HasField("shape"):
        return None
    return tuple(int(d.dim_value) if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim)


def _infer_once(light: onnx.ModelProto, notes: list[str]) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(light, check_type=False, strict_mode=False, data_prop=True)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError) as e:
        # strict_mode=False should not raise; if ONNX still does, go on with the shapes known so far
        log.warning("shape inference failed: %s", e)
        notes.append(f"shape inference failed ({type(e).__name__}: {e}); some MACs may be missing")
        return light


def _collect(graph: onnx.GraphProto) -> dict[str, Shape]:
    shapes: dict[str, Shape] = {}
    for t in graph.initializer:
        shapes[t.name] = tuple(int(d) for d in t.dims)
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        s = _shape_of(vi)
        if s is not None:
            shapes[vi.name] = s
    return shapes


def infer(
    model: onnx.ModelProto,
    *,
    nodes: Sequence[onnx.NodeProto] | None = None,
    batch: int = 1,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
) -> ShapeResult:
    """Concrete shapes for every tensor of ``model``'s main graph.

    ``nodes`` are the graph's nodes in topological order (default: as stored).
    """
    notes: list[str] = []
    overrides = dict(input_shapes or {})
    inputs, _ = io_specs(model.graph)
    unknown = set(overrides) - {s.name for s in inputs}
    if unknown:
        raise UsageError(
            f"input_shapes names {sorted(unknown)} that are not inputs of the model",
            hint=f"the inputs are {[s.name for s in inputs]}",
        )
    concrete: dict[str, tuple[int, ...]] = {}
    for spec in inputs:
        shape = _concrete_input_shape(spec, batch=batch, override=overrides.get(spec.name), notes=notes)
        if shape is not None:
            concrete[spec.name] = shape
    light = _inference_copy(model, concrete, list(model.graph.node) if nodes is None else nodes)
    inferred = _infer_once(light, notes)
    known: dict[str, Any] = {}
    for _ in range(_MAX_FOLD_ROUNDS):
        folded = fold_shape_values(inferred, _collect(inferred.graph), known)
        if folded is None:
            break
        inferred = _infer_once(folded, notes)
    shapes: dict[str, Shape] = {}
    for t in model.graph.initializer:
        shapes[t.name] = tuple(int(d) for d in t.dims)
    for name, s in _collect(inferred.graph).items():
        shapes.setdefault(name, s)
    for node in model.graph.node:  # Constant nodes: their shapes are in the attribute
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            for a in node.attribute:
                if a.name == "value":
                    shapes[node.output[0]] = tuple(int(d) for d in a.t.dims)
    return ShapeResult(shapes=shapes, input_shapes=concrete, notes=tuple(notes))
