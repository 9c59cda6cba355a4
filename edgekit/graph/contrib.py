"""Shape stand-ins for onnxruntime's contrib ops, and topological order.

ONNX's shape inference knows no ``com.microsoft`` op, and onnxruntime's
quantizer writes several of them in operator (QOperator) form: QLinearAdd,
QLinearMul, QLinearGlobalAveragePool, QGemm, ... Inference stops at the first
one, leaving every later shape unknown. For shape inference only, each such
node is replaced by standard ONNX nodes that produce an output of the same
shape (an Add for QLinearAdd, a Slice to 1x1 for the global pool, a
MatMulInteger for QGemm). Element types may differ; they are not used.

Some tools (onnxruntime's float16 converter) also append nodes out of
topological order; :func:`sorted_nodes` restores the order every analysis
here relies on.
"""

from __future__ import annotations

import heapq
from collections.abc import Sequence

import numpy as np
import onnx
from onnx import helper, numpy_helper

MS = "com.microsoft"

_UNARY = frozenset(
    {
        "QLinearSigmoid", "QLinearLeakyRelu", "QLinearSoftmax", "QuantizeLinear", "DequantizeLinear",
        "Gelu", "FastGelu", "BiasGelu", "QuickGelu", "DynamicQuantizeLinear",
    }
)  # fmt: skip


def _attrs(node: onnx.NodeProto, *names: str) -> list[onnx.AttributeProto]:
    return [a for a in node.attribute if a.name in names]


def _int_attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def standin(node: onnx.NodeProto) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]] | None:
    """Standard nodes (and constants) with ``node``'s output shapes, or None if unknown."""
    if node.domain != MS:
        return None
    op, ins, out = node.op_type, list(node.input), node.output[0]
    tag = (node.name or out).replace("/", "_")
    if op in _UNARY:
        return [helper.make_node("Identity", [ins[0]], [out])], []
    if op in ("QLinearAdd", "QLinearMul"):
        return [helper.make_node(op[len("QLinear") :], [ins[0], ins[3]], [out])], []
    if op == "QLinearConcat":
        return [helper.make_node("Concat", ins[2::3], [out], axis=_int_attr(node, "axis", 0))], []
    if op == "QLinearAveragePool":
        node_ = helper.make_node("MaxPool", [ins[0]], [out])
        node_.attribute.extend(_attrs(node, "kernel_shape", "strides", "pads", "ceil_mode", "auto_pad", "dilations"))
        return [node_], []
    if op == "QLinearGlobalAveragePool":
        axes = [1, 2] if _int_attr(node, "channels_last", 0) else [2, 3]
        consts = [
            numpy_helper.from_array(np.array([0, 0], np.int64), f"{tag}__starts"),
            numpy_helper.from_array(np.array([1, 1], np.int64), f"{tag}__ends"),
            numpy_helper.from_array(np.array(axes, np.int64), f"{tag}__axes"),
        ]
        return [helper.make_node("Slice", [ins[0]] + [c.name for c in consts], [out])], consts
    if op in ("QGemm", "FusedMatMul"):
        a, b = (ins[0], ins[3]) if op == "QGemm" else (ins[0], ins[1])
        nodes = []
        if _int_attr(node, "transA", 0):
            nodes.append(helper.make_node("Transpose", [a], [f"{tag}__a"], perm=[1, 0]))
            a = f"{tag}__a"
        if _int_attr(node, "transB", 0):
            nodes.append(helper.make_node("Transpose", [b], [f"{tag}__b"], perm=[1, 0]))
            b = f"{tag}__b"
        nodes.append(helper.make_node("MatMul" if op == "FusedMatMul" else "MatMulInteger", [a, b], [out]))
        return nodes, []
    if op == "FusedConv":
        node_ = helper.make_node("Conv", ins[:3], [out])
        node_.attribute.extend(_attrs(node, "kernel_shape", "strides", "pads", "group", "auto_pad", "dilations"))
        return [node_], []
    if op == "FusedGemm":
        node_ = helper.make_node("Gemm", ins[:3], [out])
        node_.attribute.extend(_attrs(node, "transA", "transB", "alpha", "beta"))
        return [node_], []
    return None


def sorted_nodes(graph: onnx.GraphProto) -> tuple[list[onnx.NodeProto], bool]:
    """The nodes of ``graph`` in topological order (stable) and whether they already were.

    A graph with a cycle or a dangling input keeps its order for the nodes that
    cannot be placed (they come last, in their original order).
    """
    nodes: Sequence[onnx.NodeProto] = graph.node
    producer: dict[str, int] = {}
    for i, n in enumerate(nodes):
        for o in n.output:
            if o:
                producer[o] = i
    deps: list[set[int]] = []
    users: list[list[int]] = [[] for _ in nodes]
    for i, n in enumerate(nodes):
        d = {producer[x] for x in _all_inputs(n) if x in producer and producer[x] != i}
        deps.append(d)
        for j in d:
            users[j].append(i)
    if all(j < i for i, d in enumerate(deps) for j in d):
        return list(nodes), True
    pending = [len(d) for d in deps]
    ready = [i for i, c in enumerate(pending) if c == 0]
    heapq.heapify(ready)
    order: list[int] = []
    while ready:
        i = heapq.heappop(ready)
        order.append(i)
        for u in users[i]:
            pending[u] -= 1
            if pending[u] == 0:
                heapq.heappush(ready, u)
    placed = set(order)
    order.extend(i for i in range(len(nodes)) if i not in placed)
    return [nodes[i] for i in order], False


def _all_inputs(node: onnx.NodeProto) -> list[str]:
    """Inputs of a node, including the outer-scope names its subgraphs read."""
    names = [x for x in node.input if x]
    for a in node.attribute:
        graphs = [a.g] if a.type == onnx.AttributeProto.GRAPH else list(a.graphs)
        for g in graphs:
            for n in g.node:
                names.extend(_all_inputs(n))
    return names
