"""One cell of the benchmark matrix: one artifact on one runtime at one precision.

See :mod:`edgekit.bench.runner` for the order of work. Outcomes:

* ``unsupported``: the runtime refused to open the model in this
  configuration (an OpenVINO precision this CPU would silently replace, an
  execution provider or device missing here); the reason is its message;
* ``error``: it opened, then an edgekit check failed while measuring;
* ``ok``: measured. Parts that cannot be measured (latency of a static
  batch-N graph on ONNX Runtime, a batch size it cannot run, accuracy without
  matching labels) are recorded as skipped, each with its reason.

An artifact whose model does not take what its manifest says (input name,
dtype, image size) stops the whole run with an :class:`ArtifactError`.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgekit.bench.accuracy import AccuracyResult, compute_accuracy
from edgekit.bench.environment import Environment
from edgekit.bench.harness import LatencyResult, ThroughputPoint, ThroughputResult, measure_latency, measure_throughput
from edgekit.bench.inputs import ArtifactInputs, EvalSet
from edgekit.bench.memory import MemorySampler
from edgekit.bench.plan import Cell, artifact_format
from edgekit.bench.results import BenchResult
from edgekit.core.errors import ArtifactError, DataError, DeviceError, EdgekitError, UsageError
from edgekit.core.manifest import Artifact
from edgekit.core.target_schema import RuntimeSpec, TargetProfile
from edgekit.runtime.backend import BatchMode, OpenRequest
from edgekit.runtime.base import Runner
from edgekit.runtime.compare import pad_batch
from edgekit.runtime.registry import resolve_runtime, runner_for_artifact

log = logging.getLogger(__name__)

Phase = Callable[[str, float], None]
#: share of a cell's progress per phase: (start, end)
_PHASES = {"load": (0.0, 0.05), "latency": (0.05, 0.45), "throughput": (0.45, 0.85), "accuracy": (0.85, 1.0)}


@dataclass(frozen=True)
class CellContext:
    target: TargetProfile
    env: Environment
    threads: int | None
    warmup_s: float
    min_duration_s: float
    min_iterations: int
    max_duration_s: float | None
    batch_sizes: tuple[int, ...]
    seed: int
    eval_batch: int
    cv_threshold: float
    throughput_min_iterations: int = 10
    #: the offline sweep's window and warm-up per batch size (None: the latency window's)
    throughput_min_duration_s: float | None = None
    throughput_warmup_s: float | None = None
    telemetry: Any = None  # edgekit.telemetry.Telemetry: power, thermals and clocks of each latency window


def resolve_threads(ctx: CellContext, spec: RuntimeSpec) -> int:
    """--threads, else the profile's runtime or target value, else the physical cores this process may use."""
    allowed = len(ctx.env.affinity) if ctx.env.affinity else None
    for v in (ctx.threads, spec.threads, ctx.target.threads):
        if v:  # never more threads than this host may run at once (a profile's 4 on a 2-core host: CV > 100 %)
            cap = [x for x in (ctx.env.logical_cores, allowed) if x]
            return max(1, min([int(v), *cap]))
    known = [x for x in (ctx.env.physical_cores, allowed) if x]
    return max(1, min(known)) if known else 1


def open_runner(artifact: Artifact, spec: RuntimeSpec, precision: str, *, threads: int | None,
                streams: int | None, batch: int | None) -> Runner:
    """A runner for ``artifact`` on ``spec``, not yet activated. ``batch``: the static batch to compile
    (a runtime that reshapes, :attr:`BatchMode.RESHAPE`). The backend turns the cell into runner options
    (:attr:`~edgekit.runtime.backend.Backend.options`; e.g. OpenVINO gets the inference precision explicitly,
    never its silent bf16 default).
    """
    backend = resolve_runtime(spec.runtime)
    options = backend.options(OpenRequest(spec=spec, precision=precision, manifest=artifact.manifest,
                                          threads=threads, streams=streams, batch=batch))
    return runner_for_artifact(artifact, runtime=backend.name, **options)


def check_input_specs(name: str, declared: Sequence[Any], actual: Sequence[Any], image_size: tuple[int, int]) -> None:
    """Raise ArtifactError when the model's inputs differ from the manifest's (or from the preprocessing)."""
    want = {s.name: s for s in declared}
    have = {s.name: s for s in actual}
    if set(want) != set(have):
        raise ArtifactError(f"{name}: the model's inputs {sorted(have)} are not the manifest's {sorted(want)}",
                            hint="re-export the artifact")
    for k, w in want.items():
        h = have[k]
        if h.dtype != w.dtype:
            raise ArtifactError(f"{name}: input {k!r} is {h.dtype} in the model but {w.dtype} in the manifest",
                                hint="re-export the artifact")
        if len(h.shape) != 4:
            raise ArtifactError(f"{name}: input {k!r} has shape {list(h.shape)}; edgekit benchmarks image "
                                "classifiers with NCHW input")
        for hd, wd in list(zip(h.shape, w.shape))[1:]:  # the batch is checked where it is used
            if isinstance(hd, int) and isinstance(wd, int) and hd >= 0 and wd >= 0 and hd != wd:
                raise ArtifactError(f"{name}: input {k!r} has shape {list(h.shape)} in the model but "
                                    f"{list(w.shape)} in the manifest", hint="re-export the artifact")
        hw = tuple(h.shape[2:])
        if all(isinstance(d, int) and d > 0 for d in hw) and hw != tuple(image_size):
            raise ArtifactError(f"{name}: input {k!r} takes {hw[0]}x{hw[1]} images but the manifest's preprocessing "
                                f"makes {image_size[0]}x{image_size[1]}", hint="re-export the artifact")


def _span(progress: Phase | None, phase: str) -> Callable[[str, float], None]:
    lo, hi = _PHASES[phase]

    def sub(what: str, frac: float) -> None:
        if progress is not None:
            progress(what, lo + (hi - lo) * min(max(frac, 0.0), 1.0))

    return sub


def _phase_frac(phase: str, frac: float) -> float:
    """Harness phases in one monotone fraction: warm-up the first fifth, the window the rest."""
    return 0.2 * frac if phase.startswith("warmup") else 0.2 + 0.8 * frac


def _base(cell: Cell, artifact: Artifact, name: str) -> dict[str, Any]:
    s = cell.spec
    return {"key": f"{name}/{s.key}/{cell.precision}", "artifact": name, "model": artifact.manifest.model,
            "runtime": s.runtime, "device": s.device, "precision": cell.precision}


def _feed_names(runner: Runner, artifact: Artifact) -> tuple[str, str]:
    outs = [o.name for o in runner.outputs]
    want = artifact.manifest.outputs[0].name if artifact.manifest.outputs else outs[0]
    return runner.inputs[0].name, want if want in outs else outs[0]


def evaluate(runner: Runner, ev: EvalSet, *, in_name: str, out_name: str, batch: int, static: bool,
             dtype: str, class_names: tuple[str, ...] | None,
             progress: Callable[[str, float], None] | None = None) -> AccuracyResult:
    """Top-1/top-5/macro P/R/F1/confusion of ``runner`` on ``ev`` (model-space labels)."""
    logits, labels, ids = [], [], []
    n_total, seen = len(ev.indices), 0
    for x, y, idx in ev.batches(batch):
        n = len(x)
        feed = pad_batch(x.astype(dtype, copy=False), batch if static else None)
        out = runner.infer({in_name: feed})[out_name]
        logits.append(np.asarray(out[:n], dtype=np.float32).reshape(n, -1))
        labels.append(y)
        ids.append(idx)
        seen += n
        if progress is not None:
            progress("accuracy", seen / max(1, n_total))
    if not logits:
        raise DataError(f"no eval image of {ev.dataset.name} could be read")
    z = np.concatenate(logits)
    names = class_names if class_names is not None and len(class_names) == z.shape[1] else None
    acc = compute_accuracy(z, np.concatenate(labels), class_names=names)
    used = np.concatenate(ids)
    extra = {"eval_key": ev.key, "dataset": ev.dataset.name, "split": ev.split, "n_eval_asked": int(n_total),
             "n_unreadable": int(n_total - len(used)), "batch": int(batch)}
    return dataclasses.replace(acc, extra=extra)


def _latency_point(lat: LatencyResult) -> ThroughputPoint:
    return ThroughputPoint(batch_size=1, samples_per_s=lat.throughput, iterations=lat.iterations,
                           samples=lat.iterations, duration_s=lat.duration_s, cold_ms=lat.cold_ms, latency=lat.stats,
                           cut_short=lat.cut_short, n_distinct_batches=lat.n_distinct_samples)


def run_cell(ctx: CellContext, cell: Cell, artifact: Artifact, name: str, inputs: ArtifactInputs | None, *,
             progress: Phase | None = None) -> BenchResult:
    base = _base(cell, artifact, name)
    if not cell.runs or inputs is None:
        return BenchResult(status="unsupported" if cell.unsupported else "skipped", reason=cell.reason or "not run",
                           **base)
    spec, m = cell.spec, artifact.manifest
    static = m.input.shape[0] if isinstance(m.input.shape[0], int) and m.input.shape[0] > 0 else None
    fmt = artifact_format(m)
    backend = resolve_runtime(spec.runtime)
    threads = resolve_threads(ctx, spec) if backend.takes_threads else None
    streams = spec.streams or ctx.target.streams
    # the deployment shape: batch 1 where the runtime can give it
    reshapes = backend.batching is BatchMode.RESHAPE
    primary_batch = 1 if reshapes else static or 1
    warnings: list[str] = []
    with MemorySampler() as mem:
        load = _span(progress, "load")
        load("loading", 0.0)
        t0 = time.perf_counter_ns()
        runner = open_runner(artifact, spec, cell.precision, threads=threads, streams=streams,
                             batch=primary_batch if reshapes else None)
        try:
            runner.activate()
        except (ArtifactError, DataError):
            raise
        except UsageError as e:
            log.info("%s: unsupported here: %s", base["key"], e.one_line())
            return BenchResult(status="unsupported", reason=e.one_line(), **base)
        except DeviceError as e:  # no/old driver, CUDA failure: this cell's row, the run goes on
            log.warning("%s failed to load: %s", base["key"], e.one_line())
            return BenchResult(status="error", reason=e.one_line(), **base)
        load_ms = (time.perf_counter_ns() - t0) / 1e6
        try:
            check_input_specs(name, m.inputs, runner.inputs, m.preprocess.input_size)
            info = runner.info
            in_name, out_name = _feed_names(runner, artifact)
            lat, lat_skip, tput, acc, acc_skip, tel = _measure(ctx, cell, artifact, runner, inputs, in_name,
                                                               out_name, static, primary_batch, threads, streams,
                                                               progress)
            info = runner.info  # read again: some runners record more after running
        except (ArtifactError, DataError):
            raise
        except EdgekitError as e:
            log.warning("%s failed: %s", base["key"], e.one_line())
            return BenchResult(status="error", reason=e.one_line(), runner=runner.info, load_ms=load_ms, **base)
        finally:
            runner.deactivate()
    if lat is not None:
        warnings.extend(lat.stats.warnings())
        if lat.cut_short:
            warnings.append(f"latency stopped at --max-duration after {lat.iterations} iterations")
    note = info.details.get("precision_note")
    if note:
        warnings.append(str(note))
    if fmt == "onnx" and info.precision != cell.precision:
        warnings.append(f"asked for {cell.precision}, the runtime reports {info.precision}")
    status, reason = "ok", None
    if tel is not None and tel.throttled:
        text = "throttled during the latency window: " + "; ".join(tel.throttle_reasons)
        if ctx.telemetry.options.allow_throttle:
            warnings.append(text + " (kept as ok: --allow-throttle)")
        else:
            status, reason = "throttled", text
    return BenchResult(status=status, reason=reason, runner=info, load_ms=load_ms, latency=lat,
                       latency_skipped=lat_skip, throughput=tput, memory=mem.result, accuracy=acc,
                       accuracy_skipped=acc_skip, telemetry=tel, warnings=tuple(warnings), **base)


def _measure(ctx: CellContext, cell: Cell, artifact: Artifact, runner: Runner, inputs: ArtifactInputs,
             in_name: str, out_name: str, static: int | None, primary_batch: int, threads: int | None,
             streams: int | None, progress: Phase | None) -> tuple[Any, ...]:
    spec, m = cell.spec, artifact.manifest
    lat, lat_skip, tel = None, None, None
    if primary_batch == 1:
        sub = _span(progress, "latency")
        telemetry = ctx.telemetry
        cooldown = telemetry.cooldown() if telemetry is not None else None
        mon = telemetry.monitor() if telemetry is not None else None
        sustained = telemetry.options.sustained_min if telemetry is not None else None
        lat = measure_latency(runner.infer, inputs.samples, warmup_s=ctx.warmup_s,
                              min_duration_s=sustained * 60 if sustained else ctx.min_duration_s,
                              min_iterations=ctx.min_iterations, max_duration_s=None if sustained else ctx.max_duration_s,
                              progress=lambda ph, f: sub(f"latency {ph}", _phase_frac(ph, f)), seed=ctx.seed,
                              allow_single_sample=len(inputs.samples) == 1, cv_threshold=ctx.cv_threshold,
                              runtime_clock=runner.last_runtime_ns if runner.runtime_timer else None,
                              runtime_timer=runner.runtime_timer, on_window=mon.on_window if mon else None)
        if telemetry is not None and mon is not None:
            tel = telemetry.result(mon, iterations=lat.iterations, latencies_ns=lat.latencies_ns, cooldown=cooldown)
    else:
        lat_skip = (f"the graph has a static batch of {static}: single-stream latency needs batch 1, which "
                    f"{spec.runtime} cannot reshape to (export with --batch 1 or --dynamic-batch)")
    tput = _sweep(ctx, cell, artifact, runner, inputs, lat, static, primary_batch, threads, streams,
                  _span(progress, "throughput"))
    acc, acc_skip = None, inputs.accuracy_skipped
    if inputs.eval is not None:
        free = resolve_runtime(spec.runtime).batching is BatchMode.DECLARED and static is None
        batch = ctx.eval_batch if free else primary_batch
        acc = evaluate(runner, inputs.eval, in_name=in_name, out_name=out_name, batch=batch,
                       static=not free, dtype=runner.inputs[0].dtype, class_names=m.labels,
                       progress=_span(progress, "accuracy"))
    return lat, lat_skip, tput, acc, acc_skip, tel


def _sweep(ctx: CellContext, cell: Cell, artifact: Artifact, runner: Runner, inputs: ArtifactInputs,
           lat: LatencyResult | None, static: int | None, primary_batch: int, threads: int | None,
           streams: int | None, progress: Callable[[str, float], None]) -> ThroughputResult:
    """The offline batch sweep; batch 1 reuses the latency window (same protocol: one request in flight)."""
    spec = cell.spec
    backend = resolve_runtime(spec.runtime)
    points: list[ThroughputPoint] = []
    n = len(ctx.batch_sizes)
    tput_window = ctx.throughput_min_duration_s or ctx.min_duration_s
    tput_warmup = ctx.throughput_warmup_s if ctx.throughput_warmup_s is not None else ctx.warmup_s
    for i, b in enumerate(ctx.batch_sizes):
        def sub(what: str, frac: float, i: int = i) -> None:
            progress(f"throughput {what}", (i + _phase_frac(what, frac)) / n)

        if b == 1 and lat is not None:
            points.append(_latency_point(lat))
            continue
        own: Runner | None = None
        use: Runner = runner
        if backend.batching is BatchMode.DECLARED and static is not None and b != static:
            points.append(ThroughputPoint(batch_size=b, error=f"not run: the ONNX graph has a static batch of "
                                          f"{static}; {backend.name} runs only that batch (export with "
                                          "--dynamic-batch to sweep)"))
            continue
        if backend.batching is BatchMode.RESHAPE and b != primary_batch:
            try:
                own = open_runner(artifact, spec, cell.precision, threads=threads, streams=streams, batch=b)
                own.activate()
            except (ArtifactError, DataError):
                raise
            except UsageError as e:
                points.append(ThroughputPoint(batch_size=b, error=e.one_line()))
                continue
            use = own
        try:
            res = measure_throughput(use.infer, inputs.samples, batch_sizes=[b], min_duration_s=tput_window,
                                     min_iterations=ctx.throughput_min_iterations, warmup_s=tput_warmup,
                                     max_duration_s=ctx.max_duration_s, progress=sub, seed=ctx.seed,
                                     allow_single_sample=len(inputs.samples) == 1, cv_threshold=ctx.cv_threshold)
        finally:
            if own is not None:
                own.deactivate()
        points.extend(res.points)
    return ThroughputResult(points=tuple(points), settings={
        "batch_sizes": list(ctx.batch_sizes), "warmup_s": tput_warmup, "min_duration_s": tput_window,
        "min_iterations": ctx.throughput_min_iterations, "max_duration_s": ctx.max_duration_s, "seed": ctx.seed,
        "mode": "offline, one batch in flight; samples/s = samples / wall time of the window",
        "batch_1": "the single-stream latency window" if lat is not None else "measured",
        "n_distinct_samples": len(inputs.samples),
        "reshape": (f"{backend.label} compiles one static-batch model per batch size"
                    if backend.batching is BatchMode.RESHAPE else None)})
