"""Paired latency of a model before and after an optimization, and the verdict it supports.

MACs are not latency (Torch-Pruning's own ResNet-50 table shows a pruned
model getting slower; without channel rounding MobileNetV3 and
EfficientNet-B0 got slower in ONNX Runtime although their MACs halved), so a
pruned model is accepted on measured latency only.

Method: both ONNX models are loaded in the registry's first ONNX runtime (ONNX
Runtime) on the CPU with the same thread count, fed the same real preprocessed
samples, and measured in alternating windows (A B, B A, A B, ...: drift and a
noisy neighbour hit both alike) with :func:`edgekit.bench.harness.measure_latency`. Each round gives the ratio
``p50(after) / p50(before)``; the verdict rests on the median ratio over the
rounds and on how consistently the rounds agree:

* ``faster`` when the median ratio is at most ``1 - min_gain`` and at least
  :data:`CONSISTENT_FRACTION` of the rounds were faster;
* ``slower`` when the median ratio is at least ``1 + min_gain`` and that
  fraction of the rounds were slower;
* ``no measurable gain`` otherwise.

Torch-free: numpy, the bench harness and the runtime registry.
"""

from __future__ import annotations

import logging
import math
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bench.harness import measure_latency
from edgekit.core.errors import UsageError

log = logging.getLogger(__name__)

FASTER, SLOWER, NO_GAIN, NOT_MEASURED = "faster", "slower", "no measurable gain", "not measured"
#: fraction of the paired rounds that must agree before a difference is called
CONSISTENT_FRACTION = 0.8
DEFAULT_MIN_GAIN = 0.03


@dataclass(frozen=True)
class Verdict:
    """Whether the optimized model is measurably faster. ``speedup`` = 1 - median ratio."""

    kind: str
    text: str
    speedup: float | None = None

    def __bool__(self) -> bool:
        return self.kind == FASTER

    @property
    def speedup_pct(self) -> float | None:
        return None if self.speedup is None else 100.0 * self.speedup

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "text": self.text, "speedup_pct": self.speedup_pct}


def verdict_from_ratios(ratios: Sequence[float], *, min_gain: float = DEFAULT_MIN_GAIN) -> Verdict:
    """The verdict that paired ratios (after / before, per round) support; see the module docstring."""
    if not (0.0 <= min_gain < 1.0):
        raise UsageError(f"min_gain must be in [0, 1), got {min_gain}")
    r = [float(x) for x in ratios if math.isfinite(float(x)) and float(x) > 0]
    if not r:
        return Verdict(NOT_MEASURED, "not measured")
    med = statistics.median(r)
    n = len(r)
    faster = sum(1 for x in r if x < 1.0)
    slower = sum(1 for x in r if x > 1.0)
    need = math.ceil(CONSISTENT_FRACTION * n)
    speedup = 1.0 - med
    detail = f"median after/before {med:.3f}, {faster}/{n} rounds faster"
    if med <= 1.0 - min_gain and faster >= need:
        return Verdict(FASTER, f"faster by {100 * speedup:.1f}% ({detail})", speedup)
    if med >= 1.0 + min_gain and slower >= need:
        return Verdict(SLOWER, f"slower by {100 * -speedup:.1f}% ({detail})", speedup)
    why = f"below the {100 * min_gain:.0f}% threshold" if abs(speedup) < min_gain else "rounds disagree"
    return Verdict(NO_GAIN, f"no measurable gain ({detail}; {why})", speedup)


@dataclass(frozen=True)
class PairedLatency:
    """Alternating latency windows of two models on the same samples and threads."""

    before_p50_ms: tuple[float, ...]
    after_p50_ms: tuple[float, ...]
    before_cv: tuple[float, ...]
    after_cv: tuple[float, ...]
    verdict: Verdict
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def ratios(self) -> tuple[float, ...]:
        return tuple(a / b for a, b in zip(self.after_p50_ms, self.before_p50_ms))

    @property
    def median_ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")

    @property
    def before_ms(self) -> float:
        return statistics.median(self.before_p50_ms) if self.before_p50_ms else float("nan")

    @property
    def after_ms(self) -> float:
        return statistics.median(self.after_p50_ms) if self.after_p50_ms else float("nan")

    def to_json(self) -> dict[str, Any]:
        return {
            "before_p50_ms": self.before_ms,
            "after_p50_ms": self.after_ms,
            "median_ratio": self.median_ratio,
            "rounds": len(self.ratios),
            "ratios": list(self.ratios),
            "before_round_p50_ms": list(self.before_p50_ms),
            "after_round_p50_ms": list(self.after_p50_ms),
            "before_round_cv": list(self.before_cv),
            "after_round_cv": list(self.after_cv),
            "verdict": self.verdict.to_json(),
            "settings": dict(self.settings),
        }


Infer = Callable[[Any], Any]


def paired_windows(
    before: Infer,
    after: Infer,
    samples: Sequence[Any],
    *,
    rounds: int,
    window_s: float,
    warmup_s: float = 1.0,
    min_iterations: int = 10,
    min_gain: float = DEFAULT_MIN_GAIN,
    progress: Callable[[str], None] | None = None,
    seed: int = 0,
) -> PairedLatency:
    """Measure ``before`` and ``after`` in alternating windows (ABBA order, see the module docstring)."""
    if rounds < 1:
        raise UsageError(f"paired latency needs at least one round, got {rounds}")
    if not (window_s > 0):
        raise UsageError(f"the latency window must be positive, got {window_s}")
    say = progress or (lambda _m: None)
    p50: dict[str, list[float]] = {"before": [], "after": []}
    cv: dict[str, list[float]] = {"before": [], "after": []}
    fns = {"before": before, "after": after}
    for i in range(rounds):
        order = ("before", "after") if i % 2 == 0 else ("after", "before")
        for which in order:
            res = measure_latency(
                fns[which], samples,
                warmup_s=warmup_s if i == 0 else min(0.2, warmup_s),
                min_duration_s=window_s,
                min_iterations=min_iterations,
                max_duration_s=max(10.0 * window_s, 5.0),
                seed=seed + i,
            )
            p50[which].append(float(res.stats.p50))
            cv[which].append(float(res.stats.cv))
        say(f"latency round {i + 1}/{rounds}: before {p50['before'][-1]:.2f} ms, after {p50['after'][-1]:.2f} ms")
    ratios = [a / b for a, b in zip(p50["after"], p50["before"])]
    return PairedLatency(
        before_p50_ms=tuple(p50["before"]),
        after_p50_ms=tuple(p50["after"]),
        before_cv=tuple(cv["before"]),
        after_cv=tuple(cv["after"]),
        verdict=verdict_from_ratios(ratios, min_gain=min_gain),
        settings={
            "rounds": rounds,
            "window_s": window_s,
            "warmup_s": warmup_s,
            "min_iterations": min_iterations,
            "order": "alternating ABBA windows, the first round warmed up",
            "statistic": "p50 per window; ratio after/before per round; median over rounds",
            "min_gain": min_gain,
            "consistent_fraction": CONSISTENT_FRACTION,
            "n_distinct_samples": len(samples),
        },
    )


def paired_onnx_latency(
    before: Path,
    after: Path,
    samples: Sequence[dict[str, np.ndarray]],
    *,
    threads: int,
    rounds: int,
    window_s: float,
    min_gain: float = DEFAULT_MIN_GAIN,
    progress: Callable[[str], None] | None = None,
) -> PairedLatency:
    """:func:`paired_windows` of two ONNX files on this host's CPU (``threads`` intra-op) in the registry's
    first ONNX runtime (ONNX Runtime), opened as runtime.compare.reference_runner opens the FP32 reference."""
    from edgekit.runtime.compare import reference_runner

    with reference_runner(before, threads=threads) as ra, reference_runner(after, threads=threads) as rb:
        res = paired_windows(ra.infer, rb.infer, samples, rounds=rounds, window_s=window_s,
                             min_gain=min_gain, progress=progress)
        info = ra.info.to_json()
    settings = dict(res.settings)
    settings.update({"runtime": info["runtime"], "runtime_version": info["runtime_version"],
                     "device": info["device"], "threads": threads, "providers": info["details"].get("providers"),
                     "batch": 1})
    return PairedLatency(res.before_p50_ms, res.after_p50_ms, res.before_cv, res.after_cv, res.verdict, settings)
