"""``edgekit bench``: the measurement core and the run around it. No torch anywhere (a device runs it).

The measurement core (numpy, the standard library and edgekit.core; runners are passed in as callables):

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
* :mod:`~edgekit.bench.paired_latency`: paired latency before and after an optimization;
* :mod:`~edgekit.bench.environment`: what the run ran on.

The run (through :mod:`edgekit.runtime.registry`; a runtime is imported only when a cell opens it):

* :mod:`~edgekit.bench.runner`: :func:`~edgekit.bench.runner.run_bench`, the order of work;
* :mod:`~edgekit.bench.plan`: which artifact x runtime x precision cells run, and why the others do not;
* :mod:`~edgekit.bench.cell`: one cell, one artifact on one runtime at one precision, and its outcome;
* :mod:`~edgekit.bench.inputs`: the latency sample pool and the labelled eval set;
* :mod:`~edgekit.bench.reference`: each row's FP32 reference, agreement and paired comparison;
* :mod:`~edgekit.bench.results`: the versioned results (``results.json``);
* :mod:`~edgekit.bench.model_cache`: ``--model NAME`` (host only: exports through the ``torch`` extra).

This package's own imports stay light: the names below are the measurement core.
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
