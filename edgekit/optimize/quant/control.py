"""Accuracy control for ONNX Runtime Q/DQ models: sensitivity-ranked float fallback.

1. **Rank.** The FP32 (pre-processed) graph and the fully quantized graph run
   on a few calibration images (not the eval images) with every node output
   exposed and graph optimizations off, so the Q/DQ graph computes in
   simulated quantization. For each quantized node, the normalized error of
   its output, ``nmse = sum((q - f)^2) / sum(f^2)``, minus the largest nmse of
   its inputs is the error the node *adds*; nodes are ranked by it, most
   harmful first. One run per model, instead of one quantization per node.
2. **Fall back.** The ``k`` most harmful nodes are kept in float
   (``nodes_to_exclude``, re-using the cached calibration ranges), the model is
   evaluated on the eval set and its top-1 drop against the FP32 parent
   measured. ``k`` grows 1, 2, 4, 8, ... until the drop fits the budget, then
   a bisection between the last failing and the first fitting ``k`` looks for
   fewer float nodes, all within ``max_iterations`` evaluations.

The drop is measured on the eval images the fallback is chosen on, so it is
optimistic; the manifest says so.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.lazy import require

log = logging.getLogger(__name__)

RANK_IMAGES = 16


def _expose_outputs(model: Any, names: list[str]) -> Any:
    onnx = require("onnx")
    m = onnx.ModelProto()
    m.CopyFrom(model)
    have = {o.name for o in m.graph.output}
    for n in names:
        if n not in have:
            m.graph.output.append(onnx.helper.make_tensor_value_info(n, onnx.TensorProto.FLOAT, None))
    return m


def _session(model: Any, threads: int | None) -> Any:
    ort = require("onnxruntime")
    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_DISABLE_ALL
    so.intra_op_num_threads = threads or 0
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def rank_nodes(
    fp32_path: Path, int8_path: Path, x: np.ndarray, *, input_name: str, batch: int, threads: int | None
) -> list[tuple[str, float]]:
    """Quantized nodes of ``int8_path`` ranked by the error they add (most harmful first)."""
    onnx = require("onnx")
    from edgekit.optimize.quant.ort import float_nodes

    fmodel = onnx.load(str(fp32_path))
    qmodel = onnx.load(str(int8_path))
    quantized, _ = float_nodes(qmodel)
    skip = ("QuantizeLinear", "DequantizeLinear", "Constant")
    # pair each compute node's first output by node name: ORT may fold a Relu/Clip into the
    # Q/DQ of asymmetric activations and give its output name to the node before it
    fnodes = {n.name: n for n in fmodel.graph.node if n.op_type not in skip and n.output}
    qnodes = {n.name: n for n in qmodel.graph.node if n.op_type not in skip and n.output}
    pairs = {name: (fnodes[name].output[0], qnodes[name].output[0]) for name in qnodes if name in fnodes}
    fs = _session(_expose_outputs(fmodel, sorted({f for f, _ in pairs.values()})), threads)
    qs = _session(_expose_outputs(qmodel, sorted({q for _, q in pairs.values()})), threads)
    fnames = [o.name for o in fs.get_outputs()]
    qnames = [o.name for o in qs.get_outputs()]
    err = dict.fromkeys(pairs, 0.0)
    ref = dict.fromkeys(pairs, 0.0)
    for i in range(0, min(len(x), RANK_IMAGES), batch):
        chunk = x[i : i + batch]
        if len(chunk) < batch:
            chunk = np.concatenate([chunk, x[: batch - len(chunk)]])
        fo = dict(zip(fnames, fs.run(None, {input_name: chunk})))
        qo = dict(zip(qnames, qs.run(None, {input_name: chunk})))
        for name, (ft, qt) in pairs.items():
            a, b = fo.get(ft), qo.get(qt)
            if a is None or b is None or a.dtype.kind != "f" or a.shape != b.shape:
                continue
            a64 = a.astype(np.float64)
            err[name] += float(np.sum((b.astype(np.float64) - a64) ** 2))
            ref[name] += float(np.sum(a64 * a64))
    nmse = {name: err[name] / ref[name] for name in pairs if ref[name] > 0}
    # the node producing each float tensor of the Q/DQ graph, seen through DQ(Q(x)) back to x
    producer = {o: n.name for n in qmodel.graph.node if n.op_type not in skip for o in n.output}
    dq_src = {n.output[0]: n.input[0] for n in qmodel.graph.node if n.op_type == "DequantizeLinear"}
    q_src = {n.output[0]: n.input[0] for n in qmodel.graph.node if n.op_type == "QuantizeLinear"}
    scores = []
    for name in quantized:
        if name not in nmse:
            continue
        ins = []
        for t in qnodes[name].input:
            src = producer.get(q_src.get(dq_src.get(t, ""), t))
            if src in nmse:
                ins.append(nmse[src])
        scores.append((name, nmse[name] - (max(ins) if ins else 0.0)))
    scores.sort(key=lambda s: -s[1])
    return scores


@dataclass
class ControlStep:
    k: int
    drop_pts: float
    candidate_top1: float
    fits: bool

    def to_json(self) -> dict[str, Any]:
        return {"k": self.k, "drop_pts": self.drop_pts, "candidate_top1": self.candidate_top1, "fits": self.fits}


@dataclass
class ControlResult:
    kept_float: list[str]
    drop_pts: float
    fits: bool
    steps: list[ControlStep] = field(default_factory=list)
    ranking: list[tuple[str, float]] = field(default_factory=list)
    model_path: Path | None = None

    def to_json(self, budget_pts: float, max_iterations: int) -> dict[str, Any]:
        return {
            "method": "sensitivity-ranked float fallback (per-node added output nmse vs FP32, then greedy)",
            "budget_pts": budget_pts,
            "max_iterations": max_iterations,
            "iterations": len(self.steps),
            "fits": self.fits,
            "drop_pts": self.drop_pts,
            "kept_float": list(self.kept_float),
            "steps": [s.to_json() for s in self.steps],
            "ranking_top": [[n, s] for n, s in self.ranking[:20]],
            "note": "the fallback is chosen on the eval images, so the measured drop is optimistic",
        }


def accuracy_control(
    ranking: list[tuple[str, float]],
    *,
    measure: Callable[[list[str]], tuple[float, float, Path]],
    initial_drop: float,
    budget_pts: float,
    max_iterations: int,
    initial_path: Path,
) -> ControlResult:
    """Keep the most harmful nodes in float until ``measure(extra_excluded)`` fits the budget.

    ``measure`` quantizes with the extra excluded nodes and returns
    ``(drop_pts, candidate_top1, model_path)``.
    """
    names = [n for n, _ in ranking]
    if initial_drop <= budget_pts or not names:
        return ControlResult([], initial_drop, initial_drop <= budget_pts, [], ranking, initial_path)
    steps: list[ControlStep] = []
    best: tuple[int, float, Path] | None = None
    tried: dict[int, tuple[float, Path]] = {0: (initial_drop, initial_path)}
    last_fail = 0
    k = 1
    while len(steps) < max_iterations:
        k = min(k, len(names))
        drop, top1, path = measure(names[:k])
        fits = drop <= budget_pts
        steps.append(ControlStep(k, drop, top1, fits))
        tried[k] = (drop, path)
        log.info("accuracy control: %d node(s) in float -> drop %.2f pts (%s)", k, drop, "fits" if fits else "over")
        if fits:
            best = (k, drop, path)
            break
        last_fail = k
        if k == len(names):
            break
        k *= 2
    if best is not None:  # bisect for fewer float nodes
        lo, hi = last_fail, best[0]
        while hi - lo > 1 and len(steps) < max_iterations:
            mid = (lo + hi) // 2
            drop, top1, path = measure(names[:mid])
            fits = drop <= budget_pts
            steps.append(ControlStep(mid, drop, top1, fits))
            if fits:
                hi, best = mid, (mid, drop, path)
            else:
                lo = mid
        return ControlResult(names[: best[0]], best[1], True, steps, ranking, best[2])
    k_best = min(tried, key=lambda kk: (tried[kk][0], kk))
    drop, path = tried[k_best]
    return ControlResult(names[:k_best], drop, False, steps, ranking, path)
