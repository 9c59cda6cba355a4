"""``edgekit bench``: run the artifact x runtime x precision matrix on a target and report it.

:func:`run_bench` takes :class:`BenchOptions` and returns a
:class:`~edgekit.bench.results.BenchReport`. The plan (which cells run, which
are skipped and why) is :mod:`edgekit.bench.plan`; the images are
:mod:`edgekit.bench.inputs`; one cell is :mod:`edgekit.bench.cell`. For each
cell that runs, in order:

1. open the runner for the deployment shape (batch 1; OpenVINO reshapes a
   static batch-N graph, ONNX Runtime cannot, and then latency is skipped
   with the reason) and record what it reports it runs: runtime version,
   threads, device, the precision actually executed;
2. single-stream latency with the harness: real preprocessed samples, time-based
   warm-up, cold first inference apart, both stopping conditions;
3. the offline batch sweep (batch 1 is the latency window itself);
4. accuracy on the eval set through the same runner;

all inside a :class:`~edgekit.bench.memory.MemorySampler`. Then every row
gets its FP32 reference (:mod:`edgekit.bench.reference`). Artifact paths need
only numpy, Pillow, onnx and the runtime; ``model`` exports a zoo model first
(:mod:`edgekit.bench.model_cache`, host only: it needs torch).
"""

from __future__ import annotations

import datetime as _dt
import logging
import math
import os
import platform
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit import __version__
from edgekit.bench.cell import CellContext, check_input_specs, run_cell
from edgekit.bench.environment import Environment, capture_environment
from edgekit.bench.harness import TIERS
from edgekit.bench.inputs import MIN_DISTINCT_SAMPLES, DataSource
from edgekit.bench.plan import artifact_format, check_precisions, plan_cells
from edgekit.bench.reference import attach_references
from edgekit.bench.results import ArtifactInfo, BenchReport, BenchResult
from edgekit.core.errors import UsageError
from edgekit.core.manifest import Artifact, load_artifact
from edgekit.core.target_schema import TargetProfile
from edgekit.core.targets import load_target
from edgekit.runtime.registry import resolve_runtime
from edgekit.telemetry.session import Telemetry, TelemetryOptions

log = logging.getLogger(__name__)

#: batches per throughput window at least (fewer if --min-iterations is lower): samples/s needs a long
#: enough window, which the minimum duration gives; 100 batches of 32 would take minutes on a small CPU
THROUGHPUT_MIN_ITERATIONS = 10
#: the offline sweep's window per batch size, at most: samples/s averages over the whole window, so it needs
#: no percentile tail; measured, the sweep at the latency window's 10 s cost ~60 s per OpenVINO row
THROUGHPUT_MAX_WINDOW_S = 2.0
#: warm-up is this share of the window it precedes (capped by the target's warm-up): a 1 s window no longer
#: pays a 2 s warm-up, a 10 s one still gets the profile's 2 s
WARMUP_SHARE = 0.2
#: the quick tier sweeps only these of the profile's batch sizes (OpenVINO compiles one model per size, and a
#: batch of 32 needs 10 iterations of 32 images) and evaluates a stratified subset of this many images
QUICK_SWEEP = (1, 8)
QUICK_EVAL_SIZE = 500


def tier_batches(tier: str, batch_sizes: Sequence[int]) -> tuple[int, ...]:
    """The throughput sweep a tier runs of a profile's batch sizes (``--batch`` overrides it)."""
    if tier != "quick":
        return tuple(batch_sizes)
    return tuple(b for b in batch_sizes if b in QUICK_SWEEP) or tuple(batch_sizes[:1])
#: progress(what is running, overall fraction done in [0, 1])
Progress = Callable[[str, float], None]
_ARCH = {"amd64": "x86_64", "x86_64": "x86_64", "arm64": "aarch64", "aarch64": "aarch64"}


@dataclass(frozen=True)
class BenchOptions:
    """What ``edgekit bench`` takes; ``None`` means the target's or the tier's default."""

    target: str | os.PathLike[str] | TargetProfile
    artifacts: tuple[str | os.PathLike[str], ...] = ()
    model: str | None = None  # a zoo model to export first (host only, needs torch)
    weights: str = "imagenet"  # for ``model``
    img_size: int | None = None  # for ``model``
    runtimes: tuple[str, ...] | None = None  # names, aliases or runtime:device
    precisions: tuple[str, ...] | None = None
    batch_sizes: tuple[int, ...] | None = None  # the throughput sweep; None: the target's
    data: str | os.PathLike[str] | None = None  # None: the embedded held-out set, accuracy only if labels match
    accuracy: bool = True
    #: evaluate on every image of --data even when some trained or selected the model (never by default)
    selection_splits: bool = False
    eval_size: int | None = None  # None: the whole eval set
    tier: str = "ci"
    min_duration_s: float | None = None
    min_iterations: int | None = None
    max_duration_s: float | None = None
    warmup_s: float | None = None
    threads: int | None = None
    latency_samples: int = MIN_DISTINCT_SAMPLES
    seed: int = 0
    accuracy_budget_pts: float | None = None  # None: 1 % of the FP32 reference's top-1
    eval_batch: int = 32  # eval batch for runners that take any batch (dynamic-batch ONNX Runtime)
    cache_dir: str | os.PathLike[str] | None = None  # for ``model``
    include_samples: bool = False  # keep every latency sample in the results
    command: tuple[str, ...] = ()
    #: run a profile whose hardware this host is not with its settings here; results are named after this host
    emulate: bool = False
    telemetry: TelemetryOptions | None = None  # power/thermal/clock sampling of each latency window; None: off

    def validate(self) -> None:
        """Every check that needs no file: bad numbers fail before anything is loaded."""
        if bool(self.artifacts) == bool(self.model):
            raise UsageError("give either artifact paths or --model NAME (exactly one of them)",
                             hint="e.g. 'edgekit bench --target cpu out/mobilenetv3' or --model mobilenetv3")
        if self.tier not in TIERS:
            raise UsageError(f"unknown tier {self.tier!r}", hint=f"choose one of {', '.join(TIERS)}")
        _positive("--min-duration", self.min_duration_s)
        _positive("--max-duration", self.max_duration_s)
        _positive("--min-iterations", self.min_iterations, integer=True)
        _positive("--warmup", self.warmup_s, allow_zero=True)
        _positive("--threads", self.threads, integer=True)
        _positive("--eval-size", self.eval_size, integer=True)
        _positive("--img-size", self.img_size, integer=True)
        _positive("latency_samples", self.latency_samples, integer=True)
        _positive("eval_batch", self.eval_batch, integer=True)
        _positive("--budget", self.accuracy_budget_pts, allow_zero=True)
        for b in self.batch_sizes or ():
            _positive("--batch", b, integer=True)
        if self.batch_sizes is not None and not self.batch_sizes:
            raise UsageError("--batch is empty", hint="give batch sizes like --batch 1,8,32")
        check_precisions(self.precisions)
        if self.telemetry is not None:
            self.telemetry.validate()
        if self.max_duration_s is not None and self.max_duration_s < self.stopping()[0]:
            raise UsageError(f"--max-duration {self.max_duration_s} is shorter than the minimum duration "
                             f"{self.stopping()[0]}")

    def stopping(self) -> tuple[float, int]:
        """(min_duration_s, min_iterations): explicit values, else the tier's."""
        tier = TIERS.get(self.tier, TIERS["ci"])
        return (float(self.min_duration_s if self.min_duration_s is not None else tier["min_duration_s"]),
                int(self.min_iterations if self.min_iterations is not None else tier["min_iterations"]))


def _positive(name: str, v: Any, *, integer: bool = False, allow_zero: bool = False) -> None:
    if v is None:
        return
    bad = (isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v)
           or (integer and int(v) != v) or v < 0 or (v == 0 and not allow_zero))
    if bad:
        kind = "an integer" if integer else "a number"
        raise UsageError(f"{name} must be {kind} {'>= 0' if allow_zero else '> 0'}, got {v!r}")


def _unique_names(artifacts: Sequence[Artifact]) -> list[str]:
    names: list[str] = []
    for a in artifacts:
        base = a.path.name or a.manifest.model
        name, k = base, 2
        while name in names:
            name, k = f"{base}#{k}", k + 1
        names.append(name)
    return names


def _profile(artifact: Artifact, fmt: str) -> tuple[dict[str, Any] | None, str | None]:
    """Params and MACs from the ONNX graph; the error as text when that fails (never fatal)."""
    if fmt != "onnx":
        return None, f"params/MACs come from ONNX graphs; this is a {fmt} artifact (profile the ONNX it was built from)"
    try:
        from edgekit.graph.profile import profile_onnx

        p = profile_onnx(artifact.model_path)
    except Exception as e:  # noqa: BLE001 - recorded in the report, the benchmark goes on
        log.warning("profiling %s failed: %s: %s", artifact.model_path, type(e).__name__, e)
        return None, f"{type(e).__name__}: {' '.join(str(e).split())[:300]}"
    return {"params": p.params, "macs": p.macs, "gmacs": p.gmacs, "macs_complete": p.macs_complete,
            "batch": p.batch, "notes": list(p.notes)}, None


def _check_onnx_inputs(artifact: Artifact, name: str) -> None:
    """The ONNX graph takes what the manifest says (name, dtype, image size): checked before anything runs."""
    from edgekit.runtime.onnx_info import read_graph_info

    m = artifact.manifest
    graph = read_graph_info(artifact.model_path)
    check_input_specs(name, m.inputs, graph.inputs, m.preprocess.input_size)


#: files an artifact may carry that a runtime does not load: checkpoints, configurations, records
_NOT_DEPLOYED = (".safetensors", ".pt", ".pth", ".json", ".npz", ".txt", ".md", ".cache")


def deployed_files(model_file: str, files: dict[str, str]) -> list[str]:
    """The files a runtime loads: the model file and its weights beside it (``model.onnx.data``,
    ``model.bin``), not the fine-tune checkpoint or the pruning configuration the artifact also keeps."""
    stem = model_file.split(".", 1)[0]
    return [rel for rel in files if rel == model_file or (rel.split(".", 1)[0] == stem
                                                          and not rel.lower().endswith(_NOT_DEPLOYED))]


def _artifact_info(artifact: Artifact, name: str) -> ArtifactInfo:
    from edgekit.bench.memory import model_size_bytes

    m, fmt = artifact.manifest, artifact_format(artifact.manifest)
    profile, error = _profile(artifact, fmt)
    deployed = deployed_files(m.model_file, m.files)
    size = sum((artifact.path / rel).stat().st_size for rel in deployed) if deployed else model_size_bytes(artifact.path)
    return ArtifactInfo(
        name=name, path=str(artifact.path), model=m.model, format=fmt, precision=str(m.precision),
        model_file=m.model_file, model_sha256=m.files.get(m.model_file), files=dict(m.files), size_bytes=int(size),
        input_shape=tuple(m.input.shape), input_dtype=m.input.dtype, num_classes=m.num_classes,
        has_labels=m.labels is not None, weights_origin=m.weights.origin, preprocess=m.preprocess.to_json(),
        profile=profile, profile_error=error, lineage=tuple(s.to_json() for s in m.lineage))


def _resolve_artifacts(options: BenchOptions, say: Callable[[str], None]) -> list[Artifact]:
    if options.model:
        from edgekit.bench.model_cache import cached_export_isolated

        path = cached_export_isolated(options.model, weights=options.weights, img_size=options.img_size,
                             cache_dir=options.cache_dir, progress=say)
        return [load_artifact(path)]
    return [load_artifact(Path(p)) for p in options.artifacts]


def run_bench(options: BenchOptions, *, progress: Progress | None = None) -> BenchReport:
    """Benchmark every artifact on every runtime and precision the target and the artifact allow."""
    options.validate()
    shown = [0.0]

    def report(what: str, frac: float) -> None:  # never moves backwards
        shown[0] = max(shown[0], frac)
        if progress is not None:
            progress(what, shown[0])

    target = options.target if isinstance(options.target, TargetProfile) else load_target(options.target)
    min_duration_s, min_iterations = options.stopping()
    warmup_s = (options.warmup_s if options.warmup_s is not None
                else min(target.warmup_s, round(WARMUP_SHARE * min_duration_s, 3)))
    tput_window = min(min_duration_s, THROUGHPUT_MAX_WINDOW_S)
    tput_warmup = (options.warmup_s if options.warmup_s is not None
                   else min(warmup_s, round(WARMUP_SHARE * tput_window, 3)))
    batch_sizes = tuple(options.batch_sizes or tier_batches(options.tier, target.batch_sizes))
    eval_size = options.eval_size if options.eval_size is not None or options.tier != "quick" else QUICK_EVAL_SIZE

    artifacts = _resolve_artifacts(options, lambda msg: report(msg, 0.0))
    names = _unique_names(artifacts)
    cells = plan_cells([a.manifest for a in artifacts], target, runtimes=options.runtimes,
                       precisions=options.precisions)
    from edgekit.bench.hosting import not_here, place
    from edgekit.core.host import read_host_facts

    placement = place(target, read_host_facts(), emulate=options.emulate)
    if placement.mismatch is not None and not placement.emulated:
        cells = not_here(cells, placement)
    for a, name in zip(artifacts, names):
        if artifact_format(a.manifest) == "onnx":
            _check_onnx_inputs(a, name)
    source = DataSource(options.data, seed=options.seed, latency_samples=options.latency_samples,
                        eval_size=eval_size, accuracy=options.accuracy,
                        selection_splits=options.selection_splits)
    for a, n in zip(artifacts, names):
        if source.check(a.manifest, n)[0] is not None:  # a --data whose classes the model does not know fails here
            source.eval_split(a.manifest, n)  # and one that holds only images that trained or selected it
    report("capturing the environment", 0.0)
    env = capture_environment()
    warnings = [placement.note] if placement.note else list(_arch_warnings(target, env))
    infos = [_artifact_info(a, n) for a, n in zip(artifacts, names)]

    telemetry = _open_telemetry(options.telemetry, target, report)  # closes itself at exit too (tegrastats)
    if telemetry is not None and telemetry.source is None:
        warnings.append("power not measured: " + "; ".join(u.one_line() for u in telemetry.unavailable))
    ctx = CellContext(target=target, env=env, threads=options.threads, warmup_s=warmup_s,
                      min_duration_s=min_duration_s, min_iterations=min_iterations,
                      max_duration_s=options.max_duration_s, batch_sizes=batch_sizes, seed=options.seed,
                      eval_batch=options.eval_batch, cv_threshold=target.cv_threshold,
                      throughput_min_iterations=min(min_iterations, THROUGHPUT_MIN_ITERATIONS),
                      throughput_min_duration_s=tput_window, throughput_warmup_s=tput_warmup,
                      telemetry=telemetry)
    results: list[BenchResult] = []
    n_run = max(1, sum(c.runs for c in cells))
    done = 0
    for cell in cells:
        artifact, name = artifacts[cell.artifact], names[cell.artifact]
        inputs = None
        if cell.runs:
            rinput = artifact.manifest.input
            inputs = source.for_artifact(artifact.manifest, name, input_name=rinput.name, input_dtype=rinput.dtype)
            what = f"{name} {cell.spec.key} {cell.precision}"

            def sub(phase: str, frac: float, what: str = what, done: int = done) -> None:
                report(f"{what}: {phase}", min(1.0, (done + min(max(frac, 0.0), 1.0)) / n_run))

            results.append(run_cell(ctx, cell, artifact, name, inputs, progress=sub))
            done += 1
        else:
            results.append(run_cell(ctx, cell, artifact, name, None))
    results, ref_warnings = attach_references(results, budget_pts=options.accuracy_budget_pts)
    warnings.extend(source.warnings)
    warnings.extend(ref_warnings)
    report("done", 1.0)
    if telemetry is not None:
        telemetry.close()
    return BenchReport(
        target={"name": placement.report_name, "description": placement.note or target.description,
                "source": target.source, "profile": target.to_json(), "placement": placement.to_json()},
        settings={
            "tier": options.tier, "min_duration_s": min_duration_s, "min_iterations": min_iterations,
            "throughput_min_iterations": min(min_iterations, THROUGHPUT_MIN_ITERATIONS),
            "throughput_min_duration_s": tput_window, "throughput_warmup_s": tput_warmup,
            "max_duration_s": options.max_duration_s, "warmup_s": warmup_s, "batch_sizes": list(batch_sizes),
            "threads": options.threads, "latency_samples": options.latency_samples, "eval_size": eval_size,
            "eval_batch": options.eval_batch, "seed": options.seed, "accuracy": options.accuracy,
            "accuracy_budget_pts": options.accuracy_budget_pts,
            "accuracy_budget_rule": ("absolute" if options.accuracy_budget_pts is not None
                                     else "1 % of the FP32 reference's top-1 (MLPerf 99 % of FP32)"),
            "runtimes": list(options.runtimes) if options.runtimes else None,
            "precisions": list(options.precisions) if options.precisions else None,
            "model": options.model, "weights": options.weights if options.model else None,
            "cv_threshold": target.cv_threshold, "timer": "time.perf_counter_ns",
            "telemetry": telemetry.settings() if telemetry is not None else None,
        },
        environment=env, artifacts=tuple(infos), results=tuple(results), dataset=source.info(),
        created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"), edgekit_version=__version__,
        command=tuple(options.command), warnings=tuple(dict.fromkeys(warnings)),
        include_samples=options.include_samples,
    )


def _arch_warnings(target: TargetProfile, env: Environment) -> list[str]:
    arch = _ARCH.get(platform.machine().lower(), platform.machine())
    if target.arch and arch not in target.arch:
        return [f"target {target.name} is {'/'.join(target.arch)} but this host is {arch}: these numbers are this "
                "host's, not the target's"]
    return []


def _open_telemetry(opts: TelemetryOptions | None, target: TargetProfile,
                    report: Callable[[str, float], None]) -> Telemetry | None:
    if opts is None:
        return None
    gpu = any(resolve_runtime(s.runtime).uses_gpu(s.device, s.provider) for s in target.runtimes)
    telemetry = Telemetry.open(opts, prefer_gpu=gpu)
    if telemetry.source is not None or opts.cooldown:
        report(f"idle baseline ({opts.idle_s:g} s)", 0.0)
        telemetry.measure_idle()
    return telemetry
