"""The FP32 reference of each row, top-1 agreement with it, and the paired comparison.

Rows are grouped by what they were evaluated on: the same model (manifest
name and number of outputs) on the same images (dataset, eval indices,
preprocessing and class mapping; :attr:`EvalSet.key`). In each group the
reference is the first row, in report order, that asked for fp32 and that
the runtime reports it executed in fp32. Every row of the group gets its
top-1 agreement with that reference (1.0 for the reference itself) and,
except the reference, a paired comparison (:func:`~edgekit.bench.paired.compare_paired`)
against the accuracy budget: ``budget_pts`` points, or by default MLPerf's
"99 % of FP32", i.e. 1 % of the reference's top-1.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

import numpy as np

from edgekit.bench.paired import compare_paired, relative_budget_pts
from edgekit.bench.results import BenchResult

log = logging.getLogger(__name__)

DEFAULT_RELATIVE_BUDGET = 0.01  # MLPerf: 99 % of FP32


def group_key(r: BenchResult) -> str | None:
    a = r.accuracy
    if a is None or not r.ok:
        return None
    return f"{r.model}|{a.num_classes}|{a.extra.get('eval_key')}"


def attach_references(results: Sequence[BenchResult], *, budget_pts: float | None = None,
                      level: float = 0.95) -> tuple[list[BenchResult], list[str]]:
    """Results with ``reference``, ``accuracy.agreement`` and ``paired`` filled in, and warnings."""
    refs: dict[str, BenchResult] = {}
    for r in results:
        k = group_key(r)
        if k is not None and k not in refs and r.precision == "fp32" and r.executed_precision == "fp32":
            refs[k] = r
    out: list[BenchResult] = []
    warnings: list[str] = []
    for r in results:
        k = group_key(r)
        ref = refs.get(k) if k is not None else None
        if k is None or r.accuracy is None:
            out.append(r)
            continue
        if ref is None or ref.accuracy is None:
            msg = f"{r.key}: no fp32 row of {r.model} on the same images to compare with"
            warnings.append(msg)
            out.append(dataclasses.replace(r, warnings=(*r.warnings, msg)))
            continue
        cand, base = r.accuracy, ref.accuracy
        agreement = float(np.mean((base.predictions == cand.predictions) & (cand.predictions >= 0)))
        paired = None
        if r is not ref:
            budget = budget_pts if budget_pts is not None else relative_budget_pts(base.top1, DEFAULT_RELATIVE_BUDGET)
            paired = compare_paired(base, cand, budget_pts=budget, level=level)
        out.append(dataclasses.replace(r, accuracy=dataclasses.replace(cand, agreement=agreement),
                                       reference=ref.key, paired=paired))
    return out, warnings
