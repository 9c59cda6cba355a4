"""The two top-level conveniences that wrap option objects: :func:`run_bench` and :func:`run_gate`.

Both are re-exported by ``edgekit`` (lazily) and stay torch-free unless ``model=`` asks for an export.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from edgekit.core.errors import UsageError


def run_bench(artifacts: Sequence[str | os.PathLike[str]] = (), *, target: str = "cpu-x86",
              history: bool = False, **options: Any) -> Any:
    """Benchmark artifacts on ``target``; ``options`` are :class:`edgekit.bench.runner.BenchOptions` fields
    (``min_duration_s``, ``runtimes``, ``precisions``, ``accuracy``, ``data`` ...). Returns the BenchReport.
    ``history=True`` also appends it to the run history (as ``edgekit bench`` does by default)."""
    from dataclasses import fields

    from edgekit.bench.runner import BenchOptions
    from edgekit.bench.runner import run_bench as _run

    known = {f.name for f in fields(BenchOptions)} - {"target", "artifacts"}
    unknown = sorted(set(options) - known)
    if unknown:
        raise UsageError(f"run_bench does not take {', '.join(unknown)}", hint=f"it takes: {', '.join(sorted(known))}")
    for k in ("runtimes", "precisions", "batch_sizes"):
        if isinstance(options.get(k), (list, str)):
            v = options[k]
            options[k] = (v,) if isinstance(v, str) else tuple(v)
    report = _run(BenchOptions(target=target, artifacts=tuple(artifacts), **options))
    if history:
        from edgekit.history.store import record_bench_run

        record_bench_run(report)
    return report


def run_gate(report: Any, baseline: Any, **options: Any) -> Any:
    """Gate a BenchReport (or a results file) against a baseline (a Baseline, a baseline file, or another
    BenchReport); ``options`` are :class:`edgekit.gate.GateOptions` fields. ``bool(result)`` is the verdict."""
    from edgekit.bench.results import BenchReport, load_report
    from edgekit.gate import GateOptions, baseline_from_report, load_baseline
    from edgekit.gate import run_gate as _gate

    rep = report if isinstance(report, BenchReport) else load_report(report)
    if isinstance(baseline, BenchReport):
        base = baseline_from_report(baseline)
    elif isinstance(baseline, (str, os.PathLike)):
        base = load_baseline(baseline)
    else:
        base = baseline
    return _gate(rep, base, options=GateOptions(**options))
