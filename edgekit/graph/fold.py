"""Fold the shape computations of a graph once its input shapes are concrete.

Exporters compute reshape targets at run time: ``Shape -> Gather -> Div ->
Cast -> Concat -> Reshape`` (ShuffleNet's channel shuffle, the window
partition of CoAtNet's attention). ONNX's data propagation does not follow
every op of such a chain (Div and Cast stop it), so the shapes after the
Reshape stay unknown. Here the chain is evaluated with onnx's reference
implementation (numpy): ``Shape`` of a tensor with a known shape is a
constant, and any node whose inputs are all small known constants is run.
The results become initializers of the inference copy and shape inference
runs again.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import numpy as np
import onnx
from onnx import numpy_helper
from onnx.reference import ReferenceEvaluator

log = logging.getLogger(__name__)

#: tensors with more elements than this are not shape computations
MAX_ELEMENTS = 1024
_SKIP = frozenset(
    {
        "RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike", "Multinomial", "Bernoulli",
        "If", "Loop", "Scan",
    }
)  # fmt: skip
#: the errors the reference implementation raises on an op it cannot run
_EVAL_ERRORS = (RuntimeError, ValueError, TypeError, IndexError, KeyError, NotImplementedError, AttributeError)


def _attr_int(node: onnx.NodeProto, name: str) -> int | None:
    for a in node.attribute:
        if a.name == name:
            return int(a.i)
    return None


def _shape_value(node: onnx.NodeProto, shape: tuple[int | None, ...] | None) -> np.ndarray | None:
    if shape is None or any(d is None for d in shape):
        return None
    dims = [int(d) for d in shape]  # type: ignore[arg-type]
    if node.op_type == "Size":
        return np.array(int(np.prod(dims)), dtype=np.int64)
    start, end = _attr_int(node, "start"), _attr_int(node, "end")
    return np.array(dims[slice(start, end)], dtype=np.int64)


def _known_constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    known: dict[str, np.ndarray] = {}
    for t in graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            known[t.name] = numpy_helper.to_array(t)
    for node in graph.node:
        if node.op_type == "Constant" and node.domain in ("", "ai.onnx"):
            if any(a.name == "value" and int(np.prod(a.t.dims)) > MAX_ELEMENTS for a in node.attribute):
                continue
            try:
                outs = ReferenceEvaluator(node).run(None, {})  # a list when no intermediate results are asked
                value = outs[0] if isinstance(outs, list) else next(iter(outs.values()))
            except _EVAL_ERRORS:
                continue
            if np.asarray(value).size <= MAX_ELEMENTS:
                known[node.output[0]] = np.asarray(value)
    return known


def fold_shape_values(
    light: onnx.ModelProto,
    shapes: Mapping[str, tuple[int | None, ...]],
    known: dict[str, np.ndarray] | None = None,
) -> onnx.ModelProto | None:
    """A copy of ``light`` with its computable shape chains replaced by constants.

    ``known`` caches constant values between calls (pass the same dict to each
    round). Returns None when nothing new could be computed.
    """
    graph = light.graph
    opsets = {(o.domain or ""): int(o.version) for o in light.opset_import}
    if known is None:
        known = {}
    if not known:
        known.update(_known_constants(graph))
    computed: dict[str, np.ndarray] = {}
    for node in graph.node:
        if node.op_type == "Constant" or node.op_type in _SKIP or node.domain not in ("", "ai.onnx"):
            continue
        if node.op_type in ("Shape", "Size"):
            value = _shape_value(node, shapes.get(node.input[0]))
            if value is not None:
                known[node.output[0]] = computed[node.output[0]] = value
            continue
        present = [n for n in node.input if n]
        if not present or not all(n in known for n in present):
            continue
        try:
            evaluator = ReferenceEvaluator(node, opsets=opsets)
            outs = evaluator.run(None, {n: known[n] for n in present})
        except _EVAL_ERRORS as e:
            log.debug("cannot fold %s (%s): %s", node.name, node.op_type, e)
            continue
        values = [np.asarray(v) for v in outs]
        if any(v.size > MAX_ELEMENTS for v in values):
            continue
        for name, v in zip(node.output, values):
            if name:
                known[name] = computed[name] = v
    if not computed:
        return None
    folded = onnx.ModelProto()
    folded.CopyFrom(light)
    g = folded.graph
    keep = [n for n in g.node if not (n.output and all((not o) or o in computed for o in n.output))]
    if len(keep) == len(g.node):
        return None
    del g.node[:]
    g.node.extend(keep)
    used = {i for n in keep for i in n.input} | {o.name for o in g.output}
    for name, v in computed.items():
        if name in used:
            g.initializer.append(numpy_helper.from_array(v, name))
    # drop stale value_info: it will be inferred again
    del g.value_info[:]
    return folded
