"""Multiply-accumulates of one node from its tensor shapes.

A MAC is one multiply and one add of a product into a sum. Only the ops that
compute dot products count; elementwise ops, normalizations, pooling, softmax,
activations and bias additions are not MACs. This is the convention of
torchvision's published ``_ops``; our counts of the torchvision zoo match them
within 0.9 %. timm's published ``infer_gmacs`` come from fvcore, which also
counts 2 per BatchNorm input element, 5 per LayerNorm input element and 1 per
adaptive-pool input element; an exported graph has its BatchNorms folded
away, so for the BN-heavy mobile nets our figure is 2-6 % below timm's, and
adding fvcore's normalization work back reproduces timm's rounded figures
(tests/test_profile.py checks both).

* Conv, ConvInteger, QLinearConv, FusedConv: ``out_elems * (C_in / groups) * prod(kernel)``
  (depthwise and grouped convolutions included).
* ConvTranspose: ``in_elems * (C_out / groups) * prod(kernel)``.
* Gemm, QGemm, FusedGemm: ``M * N * K``.
* MatMul, MatMulInteger, QLinearMatMul, FusedMatMul: ``out_elems * K`` with
  numpy broadcasting of batch dimensions; activation x activation products
  (attention's ``Q @ K^T`` and ``attn @ V``) count like any other.
* Einsum: the product of the sizes of all indices when some index is summed
  over, else 0 (a pure transpose or elementwise product).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping

import onnx

from edgekit.graph.shapes import Shape

ShapeMap = Mapping[str, Shape]


def _known(shape: Shape | None) -> tuple[int, ...] | None:
    if shape is None or any(d is None or d < 0 for d in shape):
        return None
    return tuple(int(d) for d in shape)  # type: ignore[arg-type]


def _get(shapes: ShapeMap, node: onnx.NodeProto, slot: int, *, output: bool = False) -> tuple[int, ...] | None:
    names = node.output if output else node.input
    if slot >= len(names) or not names[slot]:
        return None
    return _known(shapes.get(names[slot]))


def _attr(node: onnx.NodeProto, name: str, default: int) -> int:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return default


def _conv(node: onnx.NodeProto, shapes: ShapeMap, weight_slot: int) -> int | None:
    y = _get(shapes, node, 0, output=True)
    w = _get(shapes, node, weight_slot)
    if y is None or w is None or len(w) < 2:
        return None
    return math.prod(y) * math.prod(w[1:])


def _conv_transpose(node: onnx.NodeProto, shapes: ShapeMap) -> int | None:
    x = _get(shapes, node, 0)
    w = _get(shapes, node, 1)
    if x is None or w is None or len(w) < 2:
        return None
    return math.prod(x) * math.prod(w[1:])


def _gemm(node: onnx.NodeProto, shapes: ShapeMap) -> int | None:
    a = _get(shapes, node, 0)
    y = _get(shapes, node, 0, output=True)
    if a is None or y is None or len(a) != 2:
        return None
    k = a[0] if _attr(node, "transA", 0) else a[1]
    return math.prod(y) * k


def _matmul(node: onnx.NodeProto, shapes: ShapeMap, a_slot: int = 0, b_slot: int = 1) -> int | None:
    a = _get(shapes, node, a_slot)
    b = _get(shapes, node, b_slot)
    if a is None or b is None or not a or not b:
        return None
    k = a[-1]
    if node.op_type == "FusedMatMul" and _attr(node, "transA", 0) and len(a) >= 2:
        k = a[-2]
    y = _get(shapes, node, 0, output=True)
    if y is None:
        a2 = a if len(a) >= 2 else (1,) + a
        b2 = b if len(b) >= 2 else b + (1,)
        batch = _broadcast(a2[:-2], b2[:-2])
        if batch is None:
            return None
        y = batch + (a2[-2], b2[-1])
    return math.prod(y) * k


def _broadcast(a: tuple[int, ...], b: tuple[int, ...]) -> tuple[int, ...] | None:
    n = max(len(a), len(b))
    a = (1,) * (n - len(a)) + a
    b = (1,) * (n - len(b)) + b
    out = []
    for x, y in zip(a, b):
        if x != y and 1 not in (x, y):
            return None
        out.append(max(x, y))
    return tuple(out)


def _einsum(node: onnx.NodeProto, shapes: ShapeMap) -> int | None:
    eq = ""
    for a in node.attribute:
        if a.name == "equation":
            eq = a.s.decode() if isinstance(a.s, bytes) else str(a.s)
    eq = eq.replace(" ", "")
    lhs, _, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(node.input):
        return None
    sizes: dict[str, int] = {}
    for term, name in zip(terms, node.input):
        shape = _known(shapes.get(name))
        if shape is None:
            return None
        if "..." in term:
            head, _, tail = term.partition("...")
            n_ell = len(shape) - len(head) - len(tail)
            letters = list(head) + [f"...{i}" for i in range(n_ell)] + list(tail)
        else:
            letters = list(term)
        if len(letters) != len(shape):
            return None
        for ch, d in zip(letters, shape):
            sizes[ch] = max(sizes.get(ch, 1), d)
    if "->" in eq:
        out_letters = {ch for ch in rhs if ch != "."}
        contracted = [ch for ch in sizes if not ch.startswith("...") and ch not in out_letters]
    else:  # implicit output: letters that appear once
        counts: dict[str, int] = {}
        for term in terms:
            for ch in term.replace("...", ""):
                counts[ch] = counts.get(ch, 0) + 1
        contracted = [ch for ch, c in counts.items() if c > 1]
    if not contracted:
        return 0
    return math.prod(sizes.values())


MAC_OPS: dict[str, Callable[[onnx.NodeProto, ShapeMap], int | None]] = {
    "Conv": lambda n, s: _conv(n, s, 1),
    "ConvInteger": lambda n, s: _conv(n, s, 1),
    "FusedConv": lambda n, s: _conv(n, s, 1),
    "QLinearConv": lambda n, s: _conv(n, s, 3),
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "QGemm": _gemm,
    "FusedGemm": _gemm,
    "MatMul": _matmul,
    "MatMulInteger": _matmul,
    "FusedMatMul": _matmul,
    "QLinearMatMul": lambda n, s: _matmul(n, s, 0, 3),
    "Einsum": _einsum,
}


def node_macs(node: onnx.NodeProto, shapes: ShapeMap) -> int | None:
    """MACs of ``node``: 0 for ops that are not MACs, None when its shapes are unknown."""
    fn = MAC_OPS.get(node.op_type)
    if fn is None:
        return 0
    return fn(node, shapes)
