"""The latency and throughput harness (torch-free, runtime-agnostic).

Method (DESIGN.md section 4, MLPerf LoadGen / trtexec / benchmark_app):

1. **Cold inference**: the very first call, before any warm-up, is timed and
   reported on its own (``cold_ms``); it includes lazy allocation, kernel
   selection and caches being filled.
2. **Warm-up** is time-based: calls are made until ``warmup_s`` of clock time
   has passed (0 means none beyond the cold call). Warm-up latencies are
   discarded.
3. **Measurement** runs until BOTH ``min_duration_s`` and ``min_iterations``
   are met (LoadGen's rule); ``max_duration_s`` caps it, and a result capped
   before both minimums were met is marked ``cut_short``.
4. **Inputs** are real preprocessed samples held in memory, visited in a
   seeded random order: each pass is a fresh permutation of all samples, so
   every sample is used and no single tensor is repeated back to back (MLPerf
   TEST04 idea). A single sample is refused unless ``allow_single_sample``.

Each iteration is timed by two ``clock()`` reads around the call alone (the
next sample is picked before the first read); the clock is injectable (tests
use a fake clock that advances deterministically).
``infer`` takes the sample dict, or the sample index when ``feed="index"``
(for runners that stage inputs on the device in advance).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.bench.stats import DEFAULT_CI_LEVEL, DEFAULT_CV_THRESHOLD, LatencyStats
from edgekit.core.errors import EdgekitError, UsageError

log = logging.getLogger(__name__)

Clock = Callable[[], int]
Progress = Callable[[str, float], None]

#: stopping-rule tiers (DESIGN.md: LoadGen defaults for CI, benchmark_app for dev, MLPerf for publish;
#: quick, the command line's default, is trtexec's 3 s window: a first answer in well under a minute)
TIERS: dict[str, dict[str, float]] = {
    "quick": {"min_duration_s": 3.0, "min_iterations": 100},
    "ci": {"min_duration_s": 10.0, "min_iterations": 100},
    "dev": {"min_duration_s": 60.0, "min_iterations": 100},
    "publish": {"min_duration_s": 600.0, "min_iterations": 100},
}
_PROGRESS_EVERY_NS = 100_000_000


def _check_positive(name: str, value: float | None, *, allow_zero: bool = False, integer: bool = False) -> None:
    if value is None:
        return
    bad = (not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value)
           or (integer and int(value) != value) or value < 0 or (value == 0 and not allow_zero))
    if bad:
        kind = "an integer" if integer else "a number"
        raise UsageError(f"{name} must be {kind} {'>= 0' if allow_zero else '> 0'}, got {value!r}")


def _check_stats_settings(cv_threshold: float, ci_level: float) -> None:
    _check_positive("cv_threshold", cv_threshold)
    if not (isinstance(ci_level, float) and 0 < ci_level < 1):
        raise UsageError(f"ci_level must be a number in (0, 1), got {ci_level!r}")


def _check_samples(samples: Sequence[Any], allow_single_sample: bool) -> int:
    n = len(samples)
    if n == 0:
        raise UsageError("no samples to run: the benchmark needs real preprocessed inputs",
                         hint="pass the evaluation images (or the embedded default dataset)")
    if n == 1:
        if not allow_single_sample:
            raise UsageError("only one distinct sample: one repeated tensor can be served from caches and "
                             "measures the wrong thing", hint="pass several real images, or allow_single_sample=True")
        log.warning("benchmarking with a single repeated sample; the result is recorded with n_distinct_samples=1")
    return n


class _Order:
    """Seeded cycling over sample indices: a fresh permutation per pass."""

    def __init__(self, n: int, seed: int) -> None:
        self.n, self.rng = n, np.random.default_rng(seed)
        self.perm: list[int] = []
        self.pos = 0
        self.visited: set[int] = set()

    def next(self) -> int:
        if self.pos >= len(self.perm):
            last = self.perm[-1] if self.perm else None
            self.perm, self.pos = [int(i) for i in self.rng.permutation(self.n)], 0
            if self.n > 1 and self.perm[0] == last:  # no back-to-back repeat across passes
                self.perm[0], self.perm[1] = self.perm[1], self.perm[0]
        i = self.perm[self.pos]
        self.pos += 1
        if len(self.visited) < self.n:
            self.visited.add(i)
        return i


Pick = Callable[[], Any]
Run = Callable[[Any], Any]


def _timed(pick: Pick, run: Run, clock: Clock) -> int:
    arg = pick()
    t0 = clock()
    run(arg)
    return clock() - t0


def _warmup(pick: Pick, run: Run, clock: Clock, warmup_s: float, progress: Progress | None,
            phase: str) -> tuple[int, int]:
    """Call until ``warmup_s`` of clock time has passed; returns (iterations, ns spent)."""
    warm_ns, iters = int(warmup_s * 1e9), 0
    start = now = clock()
    next_report = start
    while now - start < warm_ns:
        run(pick())
        iters += 1
        now = clock()
        if progress is not None and now >= next_report:
            progress(phase, min(1.0, (now - start) / warm_ns))
            next_report = now + _PROGRESS_EVERY_NS
    return iters, now - start


def _window(pick: Pick, run: Run, clock: Clock, min_duration_s: float, min_iterations: int,
            max_duration_s: float | None, progress: Progress | None, phase: str,
            after: Callable[[], None] | None = None) -> tuple[list[int], int, bool]:
    """Timed calls until BOTH minimums are met, or the maximum duration: (latencies ns, window ns, cut_short).

    ``after`` runs after each timed call, outside the timed region (it reads the runtime's own timing)."""
    min_ns, min_it = int(min_duration_s * 1e9), int(min_iterations)
    max_ns = int(max_duration_s * 1e9) if max_duration_s is not None else None
    lat: list[int] = []
    start = clock()
    next_report = start
    while True:
        arg = pick()  # outside the timed region
        t0 = clock()
        run(arg)
        end = clock()
        lat.append(end - t0)
        if after is not None:
            after()
        elapsed = end - start
        if elapsed >= min_ns and len(lat) >= min_it:
            cut_short = False
            break
        if max_ns is not None and elapsed >= max_ns:
            cut_short = True
            log.warning("%s stopped at max_duration_s=%s after %d of %d iterations", phase, max_duration_s,
                        len(lat), min_it)
            break
        if progress is not None and end >= next_report:
            done = min(elapsed / min_ns, len(lat) / min_it)
            if max_ns is not None:
                done = max(done, elapsed / max_ns)
            progress(phase, min(1.0, done))
            next_report = end + _PROGRESS_EVERY_NS
    if progress is not None:
        progress(phase, 1.0)
    return lat, end - start, cut_short


@dataclass(frozen=True)
class LatencyResult:
    """One single-stream latency window, its cold call and its settings."""

    stats: LatencyStats
    cold_ms: float
    warmup_s: float  # warm-up actually spent
    warmup_iterations: int
    duration_s: float  # measured window, first call start to last call end
    iterations: int
    cut_short: bool
    n_distinct_samples: int
    n_samples_visited: int
    seed: int
    settings: dict[str, Any]
    latencies_ns: tuple[int, ...] = ()
    #: the runtime's own timing of the same calls (e.g. OpenVINO's InferRequest.latency, TensorRT's GPU
    #: compute), without the Python binding and edgekit's checks; None where the runtime times nothing
    runtime_stats: LatencyStats | None = None
    runtime_timer: str | None = None

    @property
    def throughput(self) -> float:
        """Inferences per second over the measured window (single stream)."""
        return self.iterations / self.duration_s if self.duration_s > 0 else float("nan")

    def to_json(self, *, include_samples: bool = False) -> dict[str, Any]:
        d = {
            "stats": self.stats.to_json(), "cold_ms": self.cold_ms, "warmup_s": self.warmup_s,
            "warmup_iterations": self.warmup_iterations, "duration_s": self.duration_s,
            "iterations": self.iterations, "throughput": self.throughput, "cut_short": self.cut_short,
            "n_distinct_samples": self.n_distinct_samples, "n_samples_visited": self.n_samples_visited,
            "seed": self.seed, "settings": dict(self.settings),
            "runtime_stats": self.runtime_stats.to_json() if self.runtime_stats is not None else None,
            "runtime_timer": self.runtime_timer,
        }
        if include_samples:
            d["latencies_ns"] = list(self.latencies_ns)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> LatencyResult:
        return cls(
            stats=LatencyStats.from_json(d["stats"]), cold_ms=float(d["cold_ms"]), warmup_s=float(d["warmup_s"]),
            warmup_iterations=int(d["warmup_iterations"]), duration_s=float(d["duration_s"]),
            iterations=int(d["iterations"]), cut_short=bool(d["cut_short"]),
            n_distinct_samples=int(d["n_distinct_samples"]), n_samples_visited=int(d["n_samples_visited"]),
            seed=int(d["seed"]), settings=dict(d.get("settings", {})),
            latencies_ns=tuple(int(x) for x in d.get("latencies_ns", ())),
            runtime_stats=LatencyStats.from_json(d["runtime_stats"]) if d.get("runtime_stats") else None,
            runtime_timer=d.get("runtime_timer"),
        )


def measure_latency(
    infer: Callable[[Any], Any],
    samples: Sequence[Any],
    *,
    warmup_s: float,
    min_duration_s: float,
    min_iterations: int,
    max_duration_s: float | None = None,
    clock: Clock = time.perf_counter_ns,
    progress: Progress | None = None,
    seed: int = 0,
    feed: str = "sample",
    allow_single_sample: bool = False,
    cv_threshold: float = DEFAULT_CV_THRESHOLD,
    ci_level: float = DEFAULT_CI_LEVEL,
    runtime_clock: Callable[[], int | None] | None = None,
    runtime_timer: str | None = None,
    on_window: Callable[[str], None] | None = None,
) -> LatencyResult:
    """Single-stream latency of ``infer`` over ``samples`` (see the module docstring).

    ``runtime_clock`` (e.g. :meth:`Runner.last_runtime_ns`) is read after each measured call, outside the
    timed region; its values become ``runtime_stats``, described by ``runtime_timer``. They are kept only
    when the runtime timed every call of the window.
    ``on_window`` is called with ``"start"`` right before the measured window and ``"stop"`` right after it
    (the telemetry sampler thread, :class:`edgekit.telemetry.monitor.WindowMonitor`).
    """
    _check_positive("warmup_s", warmup_s, allow_zero=True)
    _check_positive("min_duration_s", min_duration_s)
    _check_positive("min_iterations", min_iterations, integer=True)
    _check_positive("max_duration_s", max_duration_s)
    if max_duration_s is not None and max_duration_s < min_duration_s:
        raise UsageError(f"max_duration_s ({max_duration_s}) is shorter than min_duration_s ({min_duration_s})")
    if feed not in ("sample", "index"):
        raise UsageError(f"feed must be 'sample' or 'index', got {feed!r}")
    _check_stats_settings(cv_threshold, ci_level)
    n = _check_samples(samples, allow_single_sample)
    order = _Order(n, seed)

    def pick() -> Any:
        i = order.next()
        return i if feed == "index" else samples[i]

    cold_ns = _timed(pick, infer, clock)
    warm_iters, warm_ns = _warmup(pick, infer, clock, warmup_s, progress, "warmup")
    rt_ns: list[int | None] = []
    if on_window is not None:
        on_window("start")
    try:
        lat, duration_ns, cut_short = _window(pick, infer, clock, min_duration_s, min_iterations, max_duration_s,
                                              progress, "measure",
                                              (lambda: rt_ns.append(runtime_clock())) if runtime_clock else None)
    finally:
        if on_window is not None:
            on_window("stop")
    min_it = int(min_iterations)
    stats = LatencyStats.from_ns(lat, cv_threshold=cv_threshold, ci_level=ci_level)
    rt_stats = (LatencyStats.from_ns(rt_ns, cv_threshold=cv_threshold, ci_level=ci_level)  # type: ignore[arg-type]
                if rt_ns and None not in rt_ns else None)
    for w in stats.warnings():
        log.info("%s", w)
    return LatencyResult(
        stats=stats, cold_ms=cold_ns / 1e6, warmup_s=warm_ns / 1e9,
        warmup_iterations=warm_iters, duration_s=duration_ns / 1e9, iterations=len(lat), cut_short=cut_short,
        n_distinct_samples=n, n_samples_visited=len(order.visited), seed=seed,
        settings={"warmup_s": warmup_s, "min_duration_s": min_duration_s, "min_iterations": min_it,
                  "max_duration_s": max_duration_s, "feed": feed, "cv_threshold": cv_threshold,
                  "ci_level": ci_level, "order": "seeded permutation per pass"},
        latencies_ns=tuple(lat), runtime_stats=rt_stats, runtime_timer=runtime_timer if rt_stats is not None else None,
    )


# -- offline throughput ---------------------------------------------------------

@dataclass(frozen=True)
class ThroughputPoint:
    """One batch size of the offline sweep; ``error`` is set when the runner refused it."""

    batch_size: int
    samples_per_s: float | None = None
    iterations: int = 0
    samples: int = 0
    duration_s: float = 0.0
    cold_ms: float | None = None
    latency: LatencyStats | None = None  # per batch
    cut_short: bool = False
    n_distinct_batches: int = 0
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        d = {k: getattr(self, k) for k in ("batch_size", "samples_per_s", "iterations", "samples", "duration_s",
                                             "cold_ms", "cut_short", "n_distinct_batches", "error")}
        d["latency"] = self.latency.to_json() if self.latency is not None else None
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ThroughputPoint:
        kw = {k: d.get(k) for k in ("batch_size", "samples_per_s", "iterations", "samples", "duration_s",
                                     "cold_ms", "cut_short", "n_distinct_batches", "error")}
        lat = d.get("latency")
        return cls(**kw, latency=LatencyStats.from_json(lat) if lat else None)  # type: ignore[arg-type]


@dataclass(frozen=True)
class ThroughputResult:
    points: tuple[ThroughputPoint, ...]
    settings: dict[str, Any]

    @property
    def best(self) -> ThroughputPoint | None:
        ok = [p for p in self.points if p.samples_per_s is not None]
        return max(ok, key=lambda p: p.samples_per_s or 0.0) if ok else None

    def to_json(self) -> dict[str, Any]:
        best = self.best
        return {"points": [p.to_json() for p in self.points], "settings": dict(self.settings),
                "best_batch_size": best.batch_size if best else None,
                "best_samples_per_s": best.samples_per_s if best else None}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ThroughputResult:
        return cls(points=tuple(ThroughputPoint.from_json(p) for p in d["points"]),
                   settings=dict(d.get("settings", {})))


def make_batches(samples: Sequence[dict[str, np.ndarray]], batch_size: int, *, seed: int = 0,
                 max_samples: int | None = None) -> list[dict[str, np.ndarray]]:
    """Distinct batches in seeded order, built once so that no copy is timed.

    Each sample is a batch-1 feed (leading dimension 1); batches concatenate on axis 0.
    The batches cover every sample (the last one wraps around), or at most ``max_samples``
    samples' worth of copies to bound memory. Batch size 1 reuses the samples, uncopied.
    """
    n = len(samples)
    names = list(samples[0])
    for i, s in enumerate(samples):
        if not isinstance(s, dict) or list(s) != names:
            raise UsageError(f"sample {i} does not have the inputs {names}")
        for k, a in s.items():
            if not isinstance(a, np.ndarray) or a.ndim == 0 or a.shape[0] != 1:
                raise UsageError(f"sample {i} input {k!r} must be a batch-1 array (leading dimension 1), "
                                 f"got shape {getattr(a, 'shape', None)}")
    perm = np.random.default_rng(seed).permutation(n)
    if batch_size == 1:
        return [samples[int(i)] for i in perm]
    n_batches = max(1, math.ceil(n / batch_size))
    if max_samples is not None:
        n_batches = max(1, min(n_batches, max_samples // batch_size))
    idx = np.resize(perm, n_batches * batch_size).reshape(n_batches, batch_size)
    return [{k: np.concatenate([samples[j][k] for j in row], axis=0) for k in names} for row in idx]


def measure_throughput(
    infer_batch: Callable[[dict[str, np.ndarray]], Any],
    samples: Sequence[dict[str, np.ndarray]],
    *,
    batch_sizes: Sequence[int],
    min_duration_s: float,
    min_iterations: int = 10,
    warmup_s: float = 1.0,
    max_duration_s: float | None = None,
    clock: Clock = time.perf_counter_ns,
    progress: Progress | None = None,
    seed: int = 0,
    allow_single_sample: bool = False,
    cv_threshold: float = DEFAULT_CV_THRESHOLD,
    max_batch_samples: int = 256,
) -> ThroughputResult:
    """Offline sweep: for each batch size, samples per second over the wall time of the window.

    One call in flight at a time; samples/s = iterations * batch_size / window time, where the
    window runs under the same stopping rule as :func:`measure_latency` (iterations count
    batches). Batches are built before timing from at most ``max_batch_samples`` copied samples
    per batch size (a memory bound for small devices). A batch size the runner refuses with an
    edgekit error is recorded as an error point and the sweep goes on; other exceptions propagate.
    """
    _check_positive("warmup_s", warmup_s, allow_zero=True)
    _check_positive("min_duration_s", min_duration_s)
    _check_positive("min_iterations", min_iterations, integer=True)
    _check_positive("max_duration_s", max_duration_s)
    if max_duration_s is not None and max_duration_s < min_duration_s:
        raise UsageError(f"max_duration_s ({max_duration_s}) is shorter than min_duration_s ({min_duration_s})")
    if not batch_sizes:
        raise UsageError("batch_sizes is empty")
    for b in batch_sizes:
        _check_positive("batch size", b, integer=True)
    _check_stats_settings(cv_threshold, DEFAULT_CI_LEVEL)
    _check_samples(samples, allow_single_sample)

    points = []
    for bs in batch_sizes:
        batches = make_batches(samples, int(bs), seed=seed, max_samples=max_batch_samples)
        pos = [0]

        def pick(batches: list[dict[str, np.ndarray]] = batches) -> dict[str, np.ndarray]:
            pos[0] += 1
            return batches[(pos[0] - 1) % len(batches)]

        def report(phase: str, frac: float, bs: int = int(bs)) -> None:
            if progress is not None:
                progress(f"{phase} batch {bs}", frac)

        try:
            cold_ns = _timed(pick, infer_batch, clock)
            _warmup(pick, infer_batch, clock, warmup_s, report, "warmup")
            lat, window_ns, cut = _window(pick, infer_batch, clock, min_duration_s, min_iterations, max_duration_s,
                                          report, "measure")
        except EdgekitError as e:
            log.warning("batch size %d failed: %s", bs, e)
            points.append(ThroughputPoint(batch_size=int(bs), error=str(e)))
            continue
        n_samples = len(lat) * int(bs)
        points.append(ThroughputPoint(
            batch_size=int(bs), samples_per_s=n_samples / (window_ns / 1e9) if window_ns > 0 else None,
            iterations=len(lat), samples=n_samples, duration_s=window_ns / 1e9, cold_ms=cold_ns / 1e6,
            latency=LatencyStats.from_ns(lat, cv_threshold=cv_threshold), cut_short=cut,
            n_distinct_batches=len(batches)))
    return ThroughputResult(points=tuple(points), settings={
        "batch_sizes": [int(b) for b in batch_sizes], "warmup_s": warmup_s, "min_duration_s": min_duration_s,
        "min_iterations": int(min_iterations), "max_duration_s": max_duration_s, "seed": seed,
        "mode": "offline, one batch in flight", "n_distinct_samples": len(samples),
        "max_batch_samples": max_batch_samples})
