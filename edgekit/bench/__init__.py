"""Measurement core of ``edgekit bench``: numpy and the standard library only.

* :mod:`~edgekit.bench.harness`: single-stream latency (time-based warm-up,
  cold call apart, LoadGen stopping rule, seeded sample cycling) and the
  offline batch sweep;
* :mod:`~edgekit.bench.stats`: latency statistics (nearest-rank percentiles,
  CV, order-statistic confidence intervals);
* :mod:`~edgekit.bench.memory`: peak RSS during a window, model size on disk;
* :mod:`~edgekit.bench.accuracy`: top-1/top-5, macro P/R/F1, confusion matrix,
  agreement with a reference;
* :mod:`~edgekit.bench.paired`: paired comparison of two models (drop CI,
  McNemar, verdict against a budget);
* :mod:`~edgekit.bench.environment`: what the run ran on.

None of these imports torch or a runtime: runners are passed in as callables.
The ``edgekit bench`` driver beside them (:mod:`~edgekit.bench.runner`,
:mod:`~edgekit.bench.plan`, :mod:`~edgekit.bench.cell`) opens runners through
:mod:`edgekit.runtime.registry`, asking each backend what it can do; it names
no runtime and imports one only when a cell runs on it.
"""

from __future__ import annotations

from edgekit.bench.accuracy import AccuracyResult, compute_accuracy
from edgekit.bench.environment import Environment, capture_environment
from edgekit.bench.harness import (
    LatencyResult,
    ThroughputPoint,
    ThroughputResult,
    measure_latency,
    measure_throughput,
)
from edgekit.bench.memory import MemoryResult, MemorySampler, model_size_bytes
from edgekit.bench.paired import PairedComparison, compare_paired, resolvable
from edgekit.bench.stats import LatencyStats

__all__ = [
    "AccuracyResult",
    "Environment",
    "LatencyResult",
    "LatencyStats",
    "MemoryResult",
    "MemorySampler",
    "PairedComparison",
    "ThroughputPoint",
    "ThroughputResult",
    "capture_environment",
    "compare_paired",
    "compute_accuracy",
    "measure_latency",
    "measure_throughput",
    "model_size_bytes",
    "resolvable",
]
