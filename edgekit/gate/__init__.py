"""Accuracy and latency regression gates against a committed baseline (``edgekit gate``).

Torch-free: numpy and the standard library. Typical use::

    from edgekit.bench.results import load_report
    from edgekit.gate import GateOptions, load_baseline, run_gate

    result = run_gate(load_report("results.json"), load_baseline("ci/baseline.json"),
                      options=GateOptions(max_top1_drop_pts=1.0, max_latency_increase_pct=10))
    assert result  # bool(result) is True when every check passes

The rules are in :mod:`edgekit.gate.checks` and ``docs/gate.md``.
"""

from __future__ import annotations

from edgekit.gate.baseline import (
    BASELINE_SCHEMA,
    BASELINE_VERSION,
    Baseline,
    BaselineError,
    BaselineRow,
    DatasetFingerprint,
    baseline_from_report,
    dataset_fingerprint,
    load_baseline,
    row_ids,
    write_baseline,
)
from edgekit.gate.checks import Check, ClassChange, GateOptions
from edgekit.gate.compare import GateResult, IncompatibleBaseline, RowComparison, gate_reports, run_gate
from edgekit.gate.output import baseline_changes, junit_xml, markdown_summary

__all__ = [
    "BASELINE_SCHEMA",
    "BASELINE_VERSION",
    "Baseline",
    "BaselineError",
    "BaselineRow",
    "Check",
    "ClassChange",
    "DatasetFingerprint",
    "GateOptions",
    "GateResult",
    "IncompatibleBaseline",
    "RowComparison",
    "baseline_changes",
    "baseline_from_report",
    "dataset_fingerprint",
    "gate_reports",
    "junit_xml",
    "load_baseline",
    "markdown_summary",
    "row_ids",
    "run_gate",
    "write_baseline",
]
