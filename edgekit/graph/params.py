"""Count the learned parameters stored in an ONNX graph.

What counts (the definition ``edgekit profile`` reports as ``params``):

1. Every constant tensor of the main graph is a *root*: an initializer, a
   sparse initializer, the tensor of a ``Constant`` node, and the output of an
   ``Identity`` applied directly to a root (the torchscript exporter replaces
   equal-valued initializers, e.g. the zero biases of a freshly initialized
   model, by one initializer and ``Identity`` copies of it; each copy was a
   parameter of its own in torch).
2. Constness flows through nodes whose inputs are all constant. It flows only
   through the inputs that carry values: ``DequantizeLinear``/``QuantizeLinear``
   input 0 (not scale or zero point), ``Reshape``/``Gather``/``Slice``/``Expand``
   ... input 0, ``Cast`` input 0, all inputs of other ops. So an int8 weight
   behind a ``DequantizeLinear``, an fp16 weight behind a ``Cast``, an fp32
   weight behind ``QuantizeLinear -> DequantizeLinear`` and a table behind a
   ``Gather`` each stay *one* root.
3. A root is a parameter when it reaches a node that also reads activations
   (a non-constant input), through an input slot that carries learned values:
   Conv/ConvTranspose weight and bias, Gemm/MatMul/Einsum operands, the scale
   and bias of BatchNormalization/LayerNormalization/GroupNormalization/
   InstanceNormalization (not BatchNormalization's running mean and variance:
   those are buffers in torch, not parameters), the weight and bias slots of
   QLinearConv/QLinearMatMul/ConvInteger/MatMulInteger, PRelu slopes, and
   non-scalar operands of elementwise ops (biases after MatMul, layer scales,
   position embeddings, class tokens). Slots that hold configuration are not
   parameters: scales and zero points, shapes, axes, pads, Resize scales, Clip
   bounds, indices. Roots of type int64, uint64, bool or string never count
   (they are shapes and indices), nor float scalars (a single element: the
   constants of a decomposed activation).
4. Each root counts its number of elements once, however many nodes use it
   (tied weights count once, as in ``sum(p.numel() for p in model.parameters())``).
   One exception: a float root of rank >= 2 and at least 1024 elements that
   reaches activations only through elementwise ops and holds fewer than half
   as many distinct values as elements is a table the exporter expanded at
   export time (timm's relative-position bias: a ``[(2W-1)^2, heads]`` table
   gathered into ``[1, heads, W^2, W^2]`` by constant folding); it counts its
   distinct values (two entries equal by chance count once: a few in CoAtNet's
   27 M) and the profile notes it. ``params_stored`` keeps the element count.

What the graph cannot show:

* BatchNormalization folded into the preceding convolution by the exporter
  (the torchscript exporter with constant folding, and the dynamo exporter's
  optimizer, both do it in eval mode). BN's gamma and beta (2C parameters in
  torch) become the folded convolution's bias (C values), so a folded graph
  stores C fewer values per BN that followed a bias-free convolution. We
  report what the graph stores. For the zoo that is 0 % (SqueezeNet, no BN)
  to 0.49 % (MobileNetV2: 17,056 BN channels of 3,504,872 parameters) below
  torch's count, inside the 0.5 % we promise against published counts; the
  tests check the exact identity ``params == torch params - folded BN
  channels``. Telling a folded bias from a real one would need the
  exporter's naming conventions, so we do not guess the pre-fold count.
* Initializers merged because their values are equal. Trained weights are
  never equal, but an untrained model's norm layers are all ones and zeros:
  the torchscript exporter then keeps one tensor plus ``Identity`` copies
  (counted, rule 1), while the dynamo exporter's optimizer shares the tensor
  itself, which looks exactly like tied weights and counts once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

from edgekit.graph.shapes import dtype_name
from edgekit.graph.slots import CONFIG_SLOTS, ELEMENTWISE, NO_VALUE, VALUE_INPUT0, WEIGHT_SLOTS

#: element types that are never parameters
_NEVER = frozenset({TensorProto.INT64, TensorProto.UINT64, TensorProto.BOOL, TensorProto.STRING, TensorProto.UNDEFINED})
_FLOATS = frozenset({TensorProto.FLOAT, TensorProto.DOUBLE, TensorProto.FLOAT16, TensorProto.BFLOAT16})
_TABLE_MIN_ELEMENTS = 1024


@dataclass
class Root:
    """A constant tensor of the graph."""

    name: str
    data_type: int
    dims: tuple[int, ...]
    tensor: onnx.TensorProto | None = None  # for values (None: a list attribute or unreadable)
    uses: set[str] = field(default_factory=set)  # "weight" / "elementwise" / "other"
    consumers: set[str] = field(default_factory=set)

    @property
    def numel(self) -> int:
        n = 1
        for d in self.dims:
            n *= int(d)
        return n


@dataclass(frozen=True)
class ParamCount:
    params: int
    params_stored: int
    params_by_dtype: dict[str, int]
    weight_bytes: int
    params_by_node: dict[str, int]
    notes: tuple[str, ...]


def _constant_node_root(node: onnx.NodeProto) -> Root | None:
    for a in node.attribute:
        if a.name == "value":
            return Root(node.output[0], a.t.data_type, tuple(a.t.dims), a.t)
        if a.name == "sparse_value":
            return Root(node.output[0], a.sparse_tensor.values.data_type, tuple(a.sparse_tensor.dims))
        if a.name == "value_floats":
            return Root(node.output[0], TensorProto.FLOAT, (len(a.floats),))
        if a.name == "value_float":
            return Root(node.output[0], TensorProto.FLOAT, ())
        if a.name in ("value_ints", "value_int", "value_string", "value_strings"):
            return Root(node.output[0], TensorProto.INT64, (len(a.ints),) if a.name == "value_ints" else ())
    return None


def _bytes_per_element(data_type: int) -> float:
    if data_type in (TensorProto.INT4, TensorProto.UINT4):
        return 0.5
    try:
        return float(np.dtype(onnx.helper.tensor_dtype_to_np_dtype(data_type)).itemsize)
    except (KeyError, TypeError, ValueError):
        return 1.0


def _distinct_values(root: Root) -> int | None:
    if root.tensor is None or root.tensor.data_location == TensorProto.EXTERNAL:
        return None
    try:
        arr = numpy_helper.to_array(root.tensor)
    except (ValueError, TypeError):
        return None
    return int(np.unique(arr).size)


def _is_root_param(root: Root) -> bool:
    return root.data_type not in _NEVER and root.numel > 1 and bool(root.uses)


def count_params(graph: onnx.GraphProto, nodes: Sequence[onnx.NodeProto] | None = None) -> ParamCount:
    """Count the parameters of ``graph`` (see the module docstring).

    ``nodes`` are the graph's nodes in topological order (default: as stored).
    """
    roots: dict[str, Root] = {}
    for t in graph.initializer:
        roots[t.name] = Root(t.name, t.data_type, tuple(t.dims), t)
    for st in graph.sparse_initializer:
        roots[st.values.name] = Root(st.values.name, st.values.data_type, tuple(st.dims))
    # tensor name -> names of the roots it carries (present only for constant tensors)
    const: dict[str, frozenset[str]] = {name: frozenset({name}) for name in roots}

    for node in graph.node if nodes is None else nodes:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            r = _constant_node_root(node)
            if r is not None:
                roots[r.name] = r
                const[r.name] = frozenset({r.name})
            continue
        inputs = list(node.input)
        present = [(i, n) for i, n in enumerate(inputs) if n]
        if node.op_type == "Identity" and present and present[0][1] in roots and present[0][1] in const:
            src = roots[present[0][1]]
            alias = Root(node.output[0], src.data_type, src.dims, src.tensor)
            roots[alias.name] = alias
            const[alias.name] = frozenset({alias.name})
            continue
        if present and all(n in const for _, n in present):
            if node.op_type in NO_VALUE:
                carried: frozenset[str] = frozenset()
            elif node.op_type in VALUE_INPUT0:
                carried = const[inputs[0]]
            elif node.op_type == "Where":
                carried = frozenset().union(*(const[n] for i, n in present if i > 0))
            else:
                carried = frozenset().union(*(const[n] for _, n in present))
            for out in node.output:
                if out:
                    const[out] = carried
            continue
        _mark_uses(node, present, const, roots)

    counted = [r for r in roots.values() if _is_root_param(r)]
    return _summarize(counted)


def _mark_uses(
    node: onnx.NodeProto, present: Iterable[tuple[int, str]], const: dict[str, frozenset[str]], roots: dict[str, Root]
) -> None:
    op = node.op_type
    weight_slots = WEIGHT_SLOTS.get(op, frozenset())
    config_slots = CONFIG_SLOTS.get(op, frozenset())
    for i, name in present:
        if name not in const or i in config_slots:
            continue
        use = "weight" if i in weight_slots else ("elementwise" if op in ELEMENTWISE else "other")
        for rname in const[name]:
            roots[rname].uses.add(use)
            roots[rname].consumers.add(node.name or node.output[0])


def _summarize(counted: list[Root]) -> ParamCount:
    params = stored = 0
    weight_bytes = 0.0
    by_dtype: dict[str, int] = {}
    by_node: dict[str, int] = {}
    tables: list[str] = []
    unreadable = 0
    for r in counted:
        n = r.numel
        stored += n
        weight_bytes += n * _bytes_per_element(r.data_type)
        if (
            r.uses <= {"elementwise"}
            and r.data_type in _FLOATS
            and len(r.dims) >= 2
            and n >= _TABLE_MIN_ELEMENTS
        ):
            distinct = _distinct_values(r)
            if distinct is None:
                unreadable += 1
            elif distinct * 2 < n:
                tables.append(f"{r.name} {list(r.dims)}: {distinct} distinct values")
                n = distinct
        params += n
        key = dtype_name(r.data_type)
        by_dtype[key] = by_dtype.get(key, 0) + n
        share = n / max(1, len(r.consumers))
        for c in r.consumers:
            by_node[c] = by_node.get(c, 0) + share  # type: ignore[assignment]
    notes: list[str] = []
    if tables:
        notes.append(
            f"{len(tables)} expanded table(s) counted by distinct values ({stored - params} stored copies not counted): "
            + "; ".join(tables[:3])
            + ("; ..." if len(tables) > 3 else "")
        )
    if unreadable:
        notes.append(f"{unreadable} tensor(s) with external data not loaded: counted by elements")
    return ParamCount(
        params=params,
        params_stored=stored,
        params_by_dtype=dict(sorted(by_dtype.items())),
        weight_bytes=int(round(weight_bytes)),
        params_by_node={k: int(round(v)) for k, v in by_node.items()},
        notes=tuple(notes),
    )
