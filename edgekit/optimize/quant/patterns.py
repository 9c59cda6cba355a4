"""Find the parts of a classifier graph that presets keep in float.

One small graph view (:class:`OpGraph`) is built from an ONNX model or from an
OpenVINO model, so the same rules name the nodes for ONNX Runtime's
``nodes_to_exclude`` and for NNCF's ``IgnoredScope(names=...)``:

* **squeeze-excite** blocks: a global pool (GlobalAveragePool, or ReduceMean
  over the spatial axes) of a feature map ``x``, then a small chain with at
  least one weighted layer (Conv/Gemm/MatMul) and a gate (HardSigmoid,
  Sigmoid, Clip or Div), ending in a ``Mul`` of the gate and the same ``x``.
  Every node of the block is returned, pool and Mul included. SiLU
  (``x * sigmoid(x)``) is not an SE block: its gate reaches ``x`` without a
  pool;
* the **classifier head**: the weighted layers between the last global pool
  and the graph output (timm MobileNetV3's ``conv_head`` + ``classifier``,
  torchvision's two-layer classifier, a single ``fc`` elsewhere); when no pool
  is found close to the output, the last weighted layer;
* **depthwise** convolutions: ``group > 1`` with one input channel per group
  (``group == channels``).

Constants and weights are not nodes of the view: only activation edges are.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Any

#: node types (ONNX spelling) that carry weights
WEIGHTED_OPS = frozenset({"Conv", "Gemm", "MatMul", "ConvTranspose"})
#: the gates of a squeeze-excite block
GATE_OPS = frozenset({"HardSigmoid", "Sigmoid", "Clip", "Div"})
POOL_OPS = frozenset({"GlobalAveragePool", "ReduceMean"})
#: the most nodes between an SE block's pool and its Mul (timm/torchvision use 5-8)
MAX_SE_NODES = 12
#: how far back from the output the classifier head may reach
MAX_HEAD_NODES = 16

#: OpenVINO operation types -> the ONNX spelling the rules use
OV_OP_TYPES: dict[str, str] = {
    "Convolution": "Conv",
    "GroupConvolution": "Conv",
    "MatMul": "MatMul",
    "ReduceMean": "ReduceMean",
    "HSigmoid": "HardSigmoid",
    "Sigmoid": "Sigmoid",
    "Multiply": "Mul",
    "Add": "Add",
    "Divide": "Div",
    "Clamp": "Clip",
    "Relu": "Relu",
    "HSwish": "HardSwish",
    "Swish": "Swish",
    "Reshape": "Reshape",
    "Squeeze": "Squeeze",
}
_OV_SKIP = frozenset({"Constant", "Parameter", "Result", "ShapeOf", "Convert", "FakeQuantize", "FakeConvert"})


@dataclass(frozen=True)
class OpNode:
    name: str
    op: str
    inputs: tuple[str, ...]  # activation tensors only (no weights or constants)
    outputs: tuple[str, ...]
    weighted: bool = False
    depthwise: bool = False


@dataclass(frozen=True)
class OpGraph:
    """Nodes in topological order and the graph's output tensors."""

    nodes: tuple[OpNode, ...]
    graph_outputs: tuple[str, ...]
    producer: dict[str, OpNode] = field(default_factory=dict, compare=False)
    consumers: dict[str, list[OpNode]] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        for n in self.nodes:
            for t in n.outputs:
                self.producer[t] = n
            for t in n.inputs:
                self.consumers.setdefault(t, []).append(n)

    def names(self) -> set[str]:
        return {n.name for n in self.nodes}


@dataclass(frozen=True)
class Patterns:
    """What was found: SE blocks (one tuple of node names each), head, depthwise convs."""

    se_blocks: tuple[tuple[str, ...], ...] = ()
    classifier: tuple[str, ...] = ()
    depthwise: tuple[str, ...] = ()

    def select(self, kinds: tuple[str, ...] | list[str]) -> dict[str, list[str]]:
        """Node names per requested kind (``se``, ``classifier``, ``depthwise``)."""
        out: dict[str, list[str]] = {}
        for k in kinds:
            if k == "se":
                out[k] = [n for block in self.se_blocks for n in block]
            elif k == "classifier":
                out[k] = list(self.classifier)
            elif k == "depthwise":
                out[k] = list(self.depthwise)
            else:
                raise ValueError(f"unknown pattern kind {k!r}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "se_blocks": len(self.se_blocks),
            "se_nodes": sum(len(b) for b in self.se_blocks),
            "classifier": list(self.classifier),
            "depthwise_convs": len(self.depthwise),
        }


# -- building the view ------------------------------------------------------------------------


def graph_from_onnx(model: Any) -> OpGraph:
    """The view of an ``onnx.ModelProto`` (Constant nodes and initializers are not activations)."""
    g = model.graph
    inits = {t.name: t for t in g.initializer}
    const_out: set[str] = set()
    nodes: list[OpNode] = []
    for node in g.node:
        if node.op_type == "Constant":
            const_out.update(node.output)
            continue
        acts = tuple(i for i in node.input if i and i not in inits and i not in const_out)
        if not acts and node.op_type in ("Identity", "Cast", "Reshape", "Unsqueeze", "Squeeze"):
            const_out.update(node.output)  # a constant computed from constants
            continue
        weighted = node.op_type in WEIGHTED_OPS and len(node.input) > 1 and (
            node.input[1] in inits or node.input[1] in const_out
        )
        depthwise = False
        if node.op_type == "Conv":
            group = next((int(a.i) for a in node.attribute if a.name == "group"), 1)
            w = inits.get(node.input[1]) if len(node.input) > 1 else None
            if group > 1 and w is not None and len(w.dims) >= 2 and int(w.dims[1]) == 1 and int(w.dims[0]) % group == 0:
                depthwise = True
        nodes.append(OpNode(node.name, node.op_type, acts, tuple(o for o in node.output if o), weighted, depthwise))
    return OpGraph(tuple(nodes), tuple(o.name for o in g.output))


def _ov_is_constant(op: Any, memo: dict[int, bool]) -> bool:
    key = id(op)
    if key not in memo:
        t = op.get_type_name()
        if t == "Constant":
            memo[key] = True
        elif t in ("Parameter", "ReadValue"):
            memo[key] = False
        else:
            memo[key] = all(_ov_is_constant(i.get_source_output().get_node(), memo) for i in op.inputs())
    return memo[key]


def graph_from_openvino(model: Any) -> OpGraph:
    """The view of an ``openvino.Model``; names are the operations' friendly names."""
    memo: dict[int, bool] = {}
    nodes: list[OpNode] = []
    outputs: list[str] = []
    for op in model.get_ordered_ops():
        t = op.get_type_name()
        if t == "Result":
            src = op.input(0).get_source_output()
            outputs.append(f"{src.get_node().get_friendly_name()}:{src.get_index()}")
            continue
        if t in _OV_SKIP or _ov_is_constant(op, memo):
            continue
        acts = []
        for inp in op.inputs():
            src = inp.get_source_output()
            node = src.get_node()
            if _ov_is_constant(node, memo):
                continue
            acts.append(f"{node.get_friendly_name()}:{src.get_index()}")
        name = op.get_friendly_name()
        weighted = t in ("Convolution", "GroupConvolution", "MatMul") and len(acts) == 1
        depthwise = False
        if t == "GroupConvolution":
            shape = op.input(1).get_partial_shape()
            # weights [G, C_out/G, C_in/G, kH, kW]: depthwise when one input channel per group
            if shape.rank.is_static and len(shape) == 5 and shape[2].is_static and shape[2].get_length() == 1:
                depthwise = True
        nodes.append(
            OpNode(name, OV_OP_TYPES.get(t, t), tuple(acts), tuple(f"{name}:{i}" for i in range(op.get_output_size())),
                   weighted, depthwise)
        )
    return OpGraph(tuple(nodes), tuple(outputs))


# -- the rules --------------------------------------------------------------------------------


def _se_block(graph: OpGraph, mul: OpNode, gate_t: str, feat_t: str) -> tuple[str, ...] | None:
    gate = graph.producer.get(gate_t)
    if gate is None or gate.op not in GATE_OPS:
        return None
    seen: dict[str, OpNode] = {}
    queue = deque([gate])
    found_pool = False
    while queue:
        n = queue.popleft()
        if n.name in seen:
            continue
        seen[n.name] = n
        if len(seen) > MAX_SE_NODES:
            return None
        if n.op in POOL_OPS and n.inputs == (feat_t,):
            found_pool = True
            continue
        if not n.inputs or feat_t in n.inputs:
            return None  # reached the graph input, or x without a pool (SiLU)
        for t in n.inputs:
            p = graph.producer.get(t)
            if p is None:
                return None
            queue.append(p)
    if not found_pool or not any(n.weighted for n in seen.values()):
        return None
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    return tuple(sorted([*seen, mul.name], key=lambda s: order[s]))


def find_se_blocks(graph: OpGraph) -> tuple[tuple[str, ...], ...]:
    blocks = []
    for n in graph.nodes:
        if n.op != "Mul" or len(n.inputs) != 2:
            continue
        a, b = n.inputs
        block = _se_block(graph, n, a, b) or _se_block(graph, n, b, a)
        if block:
            blocks.append(block)
    return tuple(blocks)


def find_classifier(graph: OpGraph) -> tuple[str, ...]:
    """Weighted layers between the last global pool and the output (see the module notes)."""
    head: list[OpNode] = []
    seen: set[str] = set()
    queue = deque(graph.producer[t] for t in graph.graph_outputs if t in graph.producer)
    pooled = False
    while queue and len(seen) < MAX_HEAD_NODES:
        n = queue.popleft()
        if n.name in seen:
            continue
        seen.add(n.name)
        if n.op in POOL_OPS:
            pooled = True
            continue
        if n.weighted:
            head.append(n)
        if n.op == "Add" and len(n.inputs) > 1:
            continue  # a residual: the head has ended
        queue.extend(graph.producer[t] for t in n.inputs if t in graph.producer)
    if not pooled:
        head = head[:1]
    order = {n.name: i for i, n in enumerate(graph.nodes)}
    return tuple(sorted((n.name for n in head), key=lambda s: order[s]))


def find_depthwise(graph: OpGraph) -> tuple[str, ...]:
    return tuple(n.name for n in graph.nodes if n.depthwise)


def find_patterns(graph: OpGraph) -> Patterns:
    return Patterns(find_se_blocks(graph), find_classifier(graph), find_depthwise(graph))
