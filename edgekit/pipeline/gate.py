"""A pipeline's own ``[gate]``: every derived artifact against its FP32 model on the same run and images.

This gate needs no baseline and no other machine: each bench row that has a
paired FP32 reference (same model, same eval images; see
:mod:`edgekit.bench.reference`) is judged with the rules of
``edgekit gate`` (:func:`edgekit.gate.checks.accuracy_check`,
:func:`~edgekit.gate.checks.agreement_check`; an inconclusive verdict counts
by its observed drop). A row that failed to run (``error``) fails; a row
skipped or unsupported on this machine is not judged. With no ``[gate]``
table nothing is checked. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.bench.results import BenchReport
from edgekit.pipeline.config import GateSettings


@dataclass(frozen=True)
class RunCheck:
    row: str  # the bench row key
    reference: str | None  # the FP32 row it is compared with
    name: str  # status, accuracy, agreement
    outcome: str  # pass, improved, inconclusive, fail, ...
    passed: bool
    message: str
    details: dict[str, Any] = field(default_factory=dict)

    def __bool__(self) -> bool:
        return self.passed

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def check_run(report: BenchReport, gate: GateSettings) -> list[RunCheck]:
    """The checks of ``gate`` on ``report`` (empty when the pipeline has no ``[gate]``)."""
    if not gate.enabled:
        return []
    from edgekit.gate.checks import GateOptions, accuracy_check, agreement_check

    opts = GateOptions(max_top1_drop_pts=gate.max_top1_drop, max_rel_drop_pct=gate.max_rel_drop,
                       min_agreement=gate.min_agreement, inconclusive="estimate").validate()
    by_key = {r.key: r for r in report.results}
    checks: list[RunCheck] = []
    for r in report.results:
        if r.status in ("error", "invalid"):
            checks.append(RunCheck(r.key, None, "status", "fail", False, f"{r.key} failed to run: {r.reason}"))
            continue
        ref = by_key.get(r.reference) if r.reference else None
        if not r.ok or r.accuracy is None or ref is None or ref is r or ref.accuracy is None:
            continue
        base, cur = ref.accuracy, r.accuracy
        bp = np.asarray(base.predictions, dtype=np.int64)
        cp = np.asarray(cur.predictions, dtype=np.int64)
        labels = np.asarray(base.labels, dtype=np.int64)
        if bp.shape != cp.shape or not np.array_equal(labels, np.asarray(cur.labels, dtype=np.int64)):
            continue  # not the same images: attach_references never pairs such rows
        acc, _ = accuracy_check(r.key, bp, cp, labels, opts)
        checks.append(RunCheck(r.key, ref.key, "accuracy", acc.outcome, acc.passed,
                               f"vs {ref.key}: {acc.message}", dict(acc.details)))
        if gate.min_agreement is not None:
            ag = agreement_check(r.key, bp, cp, opts)
            checks.append(RunCheck(r.key, ref.key, "agreement", ag.outcome, ag.passed,
                                   f"vs {ref.key}: {ag.message}", dict(ag.details)))
    return checks
