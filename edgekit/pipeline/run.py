"""Executing a plan: cached steps, then one benchmark of every artifact, then the reports.

Every step writes its artifact through the tool's own staging directory
(:func:`edgekit.core.atomic.staged_dir`) straight into its cache entry, so an
entry is complete or absent. At the start of a run, what killed runs left in
the cache (staging directories of dead processes) is removed. A cached entry
is used when its manifest verifies (every file's sha256) and, for a recipe
step, when the parent it records is the current parent artifact; otherwise the
step runs again. The run ends with the benchmark of every artifact, the
reports (``results.json``, ``report.md``, ``report.html``, ``run.json``), the
history record and the pipeline's own ``[gate]`` (:mod:`edgekit.pipeline.gate`). The benched
artifacts are copies in ``DIR/artifacts/<model>-<recipe>`` (see :func:`publish_artifacts`).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from edgekit.core.errors import CheckFailed, UsageError
from edgekit.core.manifest import Artifact, Manifest
from edgekit.pipeline.cache import StepCache
from edgekit.pipeline.config import Pipeline
from edgekit.pipeline.gate import RunCheck, check_run
from edgekit.pipeline.kinds import KINDS, StepInput, run_tool
from edgekit.pipeline.outputs import _write_reports, _write_run_json, budget_pts, with_verdict  # noqa: F401
from edgekit.pipeline.plan import Plan, Step, make_plan
from edgekit.telemetry.detect import PowerChoice

log = logging.getLogger(__name__)


class RunProgress:
    """What a run reports as it goes; the default logs one line per event.

    It is also a :class:`~edgekit.optimize.train.loop.TrainProgress` (training
    steps report epochs through it). The CLI subclasses it with rich bars.
    """

    def __init__(self, say: Callable[[str], None] | None = None) -> None:
        self._say = say or log.info
        self._epochs = 0

    def message(self, text: str) -> None:
        self._say(text)

    def step_start(self, index: int, total: int, step: Step, action: str) -> None:
        self._say(f"[{index}/{total}] {step.kind} {step.label}: {action}")

    def step_end(self, outcome: StepOutcome) -> None:
        pass

    def epoch_start(self, epoch: int, epochs: int, steps: int) -> None:
        self._epochs = epochs

    def step(self, loss: float) -> None:
        pass

    def epoch_end(self, record: Any) -> None:
        self._say(f"epoch {record.epoch}/{self._epochs}: loss {record.train_loss:.4f}, "
                  f"validation top-1 {record.heldout_top1:.2%} ({record.seconds:.1f} s)")

    def bench(self, what: str, fraction: float) -> None:
        pass


@dataclass(frozen=True)
class StepOutcome:
    label: str
    kind: str
    key: str
    path: str
    status: str  # "cached" | "ran" | "failed" (its own check failed) | "skipped" (its parent failed)
    seconds: float
    note: str | None = None  # why a cached entry was not used; why it failed or was skipped
    cpu_seconds: float = 0.0  # process CPU time, all threads (the steadier cost on a shared machine)

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


@dataclass(frozen=True)
class RunResult:
    plan: Plan
    outcomes: tuple[StepOutcome, ...]
    results_path: Path | None
    report_paths: dict[str, str] = field(default_factory=dict)
    history_run_id: str | None = None
    checks: tuple[RunCheck, ...] = ()
    seconds: float = 0.0
    artifacts: tuple[Path, ...] = ()  # the published copies, in plan.artifacts order
    #: wall and CPU seconds of the phases: steps, bench, reports (and the total)
    timings: dict[str, float] = field(default_factory=dict)
    #: per model x target: what to ship and why not the rest (:mod:`edgekit.verdict`)
    verdicts: tuple[Any, ...] = ()
    #: per target: its results file (several targets: ``DIR/targets/<target>/results.json``)
    target_results: dict[str, str] = field(default_factory=dict)
    targets: tuple[str, ...] = ()
    #: the bench jobs of a fleet run that did not run ("target/artifact: reason"): the run fails
    invalid_jobs: tuple[str, ...] = ()

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks) and not self.failed_steps and not self.invalid_jobs

    @property
    def failed_steps(self) -> list[StepOutcome]:
        """Steps whose own check failed (parity, the quantization budget) and the steps that needed them."""
        return [o for o in self.outcomes if o.status in ("failed", "skipped")]

    def __bool__(self) -> bool:
        return self.passed

    @property
    def failures(self) -> list[RunCheck]:
        return [c for c in self.checks if not c.passed]


def recorded_parent_sha256(manifest: Manifest) -> str | None:
    """The model-file sha256 of the parent a derived artifact records in its last lineage entry."""
    parent = manifest.lineage[-1].parent if manifest.lineage else None
    return parent.sha256 if parent is not None else None


def _cached(cache: StepCache, step: Step, done: dict[str, Artifact]) -> tuple[Artifact | None, str | None]:
    """The usable cached artifact of ``step`` (None, and why, when it must run)."""
    if cache.force:
        return None, "--force"
    if not step.path.exists():
        return None, None
    art = cache.lookup(step.entry)
    if art is None:
        return None, "the cached entry is damaged (a file does not match its manifest): redone"
    if step.parent is not None:
        parent = done[step.parent.key]
        want = parent.manifest.files.get(parent.manifest.model_file)
        have = recorded_parent_sha256(art.manifest)
        if have is not None and have != want:
            return None, "the cached entry was made from another parent artifact: redone"
    return art, None


def publish_artifacts(plan: Plan, done: dict[str, Artifact], output: Path) -> list[Path]:
    """Copy each benched artifact to ``output/artifacts/<model>-<recipe>`` (atomically; kept when identical).

    The copies make ``-o DIR`` self-contained, and their names (not the cache keys) name the rows of the
    reports, so row ids stay the same from one code version to the next.
    """
    import shutil

    from edgekit.core.atomic import staged_dir
    from edgekit.core.errors import ArtifactError
    from edgekit.core.manifest import load_artifact

    paths = []
    for model, recipe, step in plan.artifacts:
        art = done[step.key]
        dest = output / "artifacts" / f"{model}-{recipe}"
        current = None
        if dest.is_dir():
            try:
                current = load_artifact(dest, verify=True)
            except ArtifactError:
                current = None
        if current is None or current.manifest.files != art.manifest.files:
            with staged_dir(dest, overwrite=True) as stage:
                shutil.copytree(art.path, stage, dirs_exist_ok=True)
        paths.append(dest)
    return paths


def run_step(step: Step, pipeline: Pipeline, *, overwrite: bool, threads: int | None, progress: RunProgress) -> None:
    """Make the artifact of ``step`` at its cache path with its kind's tool (:data:`edgekit.pipeline.kinds.KINDS`)."""
    m = step.model
    params = step.recipe.params if step.recipe is not None else (m.finetune if m.finetune is not None else m.export)
    run_tool(KINDS[step.kind], StepInput(model=m.name, weights=m.weights, params=params, data=pipeline.data,
                                         seed=pipeline.seed, output=step.path,
                                         parent=step.parent.path if step.parent is not None else None,
                                         overwrite=overwrite, threads=threads), progress=progress)


def preflight(plan: Plan, *, device: str | None = None) -> None:
    """Check what the bench will need before any step runs: the target, the runtimes named, the precisions
    (with a ``device``: that it is registered; its runtimes are its own, checked there)."""
    from edgekit.bench.plan import check_precisions, select_runtimes
    from edgekit.core.targets import load_target

    if device is not None:
        from edgekit.remote.devices import get_device

        get_device(device)
        check_precisions(plan.pipeline.bench.precisions)
        return
    target = load_target(plan.target)
    select_runtimes(target, plan.pipeline.bench.runtimes)
    check_precisions(plan.pipeline.bench.precisions)


def _bench(plan: Plan, pipeline: Pipeline, artifacts: list[Path], *, threads: int | None,
           progress: RunProgress, device: str | None = None, device_target: str | None = None) -> Any:
    from edgekit.bench.runner import BenchOptions, run_bench
    from edgekit.telemetry import TelemetryOptions

    b, g = pipeline.bench, pipeline.gate
    options = BenchOptions(
        target=plan.target if device is None else (device_target or ""),
        artifacts=tuple(str(p) for p in artifacts),
        runtimes=b.runtimes,
        precisions=b.precisions,
        batch_sizes=b.batch,
        data=pipeline.data,
        eval_size=b.eval_size,
        min_duration_s=b.min_duration,
        min_iterations=b.min_iterations,
        warmup_s=b.warmup,
        threads=threads,
        seed=pipeline.seed,
        accuracy_budget_pts=g.max_top1_drop,
        command=("edgekit", "run", pipeline.origin),
        telemetry=TelemetryOptions(power=b.power),  # energy per inference, as 'edgekit bench' measures it
    )
    if device is not None:  # bench steps on the device over SSH; host steps ran here (edgekit.remote)
        from edgekit.remote.devices import get_device
        from edgekit.remote.remote_bench import RemoteOptions, run_remote_bench

        return run_remote_bench(options, RemoteOptions(get_device(device)), on_line=progress.message)
    return run_bench(options, progress=progress.bench)


def with_power(pipeline: Pipeline, power: str | None) -> Pipeline:
    """``pipeline`` with ``[bench] power`` overridden (``edgekit run --power``), checked before any step runs."""
    if power is None:
        return pipeline
    if power not in set(PowerChoice):
        raise UsageError(f"unknown power source {power!r}", hint=f"choose one of {', '.join(PowerChoice)}")
    return replace(pipeline, bench=replace(pipeline.bench, power=power))


def run_pipeline(
    pipeline: Pipeline,
    *,
    output: Path,
    target: str | None = None,
    force: bool = False,
    cache_root: Path | None = None,
    threads: int | None = None,
    history: bool = True,
    history_db: Path | None = None,
    progress: RunProgress | Callable[[str], None] | None = None,
    verdict_metric: str = "p50",
    fleet: Any = None,
    device: str | None = None,
    power: str | None = None,
) -> RunResult:
    """Run every step (cache hits are skipped), bench every artifact, write the reports, check ``[gate]``.

    ``power`` overrides the pipeline's ``[bench] power`` (``auto`` unless set): the power source of each latency
    window, as ``edgekit bench --power``.

    ``fleet`` (:class:`~edgekit.pipeline.targets.FleetOptions`): the targets and the executor of a run over
    several targets or devices (:mod:`edgekit.pipeline.targets`).
    """
    t_start, c_start = time.perf_counter_ns(), time.process_time_ns()
    bar = progress if isinstance(progress, RunProgress) else RunProgress(progress)
    if threads is not None and (isinstance(threads, bool) or threads < 1):
        raise UsageError(f"--threads must be >= 1, got {threads}")
    pipeline = with_power(pipeline, power)
    from edgekit.verdict import METRICS

    if verdict_metric not in METRICS:
        raise UsageError(f"--verdict-metric must be one of {', '.join(METRICS)}, got {verdict_metric!r}")
    cache = StepCache(cache_root, force=force)
    for stale in cache.sweep():
        log.info("removed %s, left by an interrupted run", stale)
    from edgekit.pipeline import targets as fleet_mod

    if device is not None:  # one registered SSH device, benched by edgekit.remote (its own bench, one call)
        if fleet is not None and len(fleet.targets) > 1:
            raise UsageError("--device benches one device; for several targets give --target device:NAME each",
                             hint="e.g. --target cpu --target device:nano-01 --target device:rpi5-a")
        targets = [f"device:{device}"]
        plan = make_plan(pipeline, cache, target=target, threads=threads)
        many = False
        preflight(plan, device=device)
    else:
        targets = fleet_mod.resolve_targets(pipeline, target, fleet)
        plan = make_plan(pipeline, cache, target=targets[0], threads=threads)
        many = fleet_mod.is_fleet(targets)
        if many:
            fleet_mod.preflight_targets(plan, targets, fleet_mod.factory_for(pipeline, fleet, threads=threads))
        else:
            preflight(plan)
    outcomes: list[StepOutcome] = []
    done: dict[str, Artifact] = {}
    from edgekit.core.manifest import load_artifact

    on_ray, ray_failed, started_ray = set(), {}, False
    if fleet is not None and fleet.executor == "ray":  # host-side steps as Ray tasks (pipeline/ray_steps.py)
        from edgekit.pipeline import ray_steps

        started_ray = ray_steps.start_ray(targets, address=fleet.ray_address, num_cpus=fleet.ray_num_cpus)
        on_ray, ray_failed = ray_steps.prebuild_on_ray(plan, pipeline, cache, threads=threads, say=bar.message)
    failed: set[str] = set()
    for i, step in enumerate(plan.steps, 1):
        t0, c0 = time.perf_counter_ns(), time.process_time_ns()
        if step.key in ray_failed:  # its own check failed in its Ray task: reported, not run again
            failed.add(step.key)
            outcome = StepOutcome(step.label, step.kind, step.key, str(step.path), "failed", 0.0,
                                  f"{ray_failed[step.key]} (on Ray)")
            outcomes.append(outcome)
            bar.step_end(outcome)
            continue
        if step.parent is not None and step.parent.key in failed:
            # make -k: the rest of the matrix still runs; what needed this parent is reported skipped
            failed.add(step.key)
            outcome = StepOutcome(step.label, step.kind, step.key, str(step.path), "skipped", 0.0,
                                  f"its parent {step.parent.label} failed")
            outcomes.append(outcome)
            bar.step_end(outcome)
            continue
        art, note = _cached(cache, step, done)
        if art is not None and step.key in on_ray:
            bar.step_start(i, len(plan.steps), step, "ran as a Ray task")
            status, note = "ran", "on Ray"
        elif art is not None:
            bar.step_start(i, len(plan.steps), step, "cached")
            status = "cached"
        else:
            bar.step_start(i, len(plan.steps), step, f"running{f' ({note})' if note else ''}")
            cache.clear_damaged(step.entry)
            try:
                run_step(step, pipeline, overwrite=step.path.exists(), threads=threads, progress=bar)
            except CheckFailed as e:  # the step's own check (parity, --max-drop): nothing was cached
                failed.add(step.key)
                kept = _set_aside(step.path)  # a failed accuracy verdict keeps its artifact: never a cache hit
                outcome = StepOutcome(step.label, step.kind, step.key, str(step.path), "failed",
                                      (time.perf_counter_ns() - t0) / 1e9,
                                      e.one_line() + (f" (the failed artifact is in {kept})" if kept else ""),
                                      (time.process_time_ns() - c0) / 1e9)
                outcomes.append(outcome)
                bar.step_end(outcome)
                continue
            art = load_artifact(step.path)
            status = "ran"
        done[step.key] = art
        outcome = StepOutcome(step.label, step.kind, step.key, str(step.path), status,
                              (time.perf_counter_ns() - t0) / 1e9, note, (time.process_time_ns() - c0) / 1e9)
        outcomes.append(outcome)
        bar.step_end(outcome)

    output.mkdir(parents=True, exist_ok=True)
    if failed:
        plan = replace(plan, artifacts=tuple(a for a in plan.artifacts if a[2].key not in failed))
        if not plan.artifacts:
            bad = [o for o in outcomes if o.status == "failed"]
            raise CheckFailed(f"every step of the pipeline failed or was skipped; first: {bad[0].label}: {bad[0].note}",
                              hint="nothing was benched; fix the failing step (its message says how)")
    published = publish_artifacts(plan, done, output)
    t_bench, c_bench = time.perf_counter_ns(), time.process_time_ns()
    invalid: tuple[str, ...] = ()
    if many:
        fb = fleet_mod.bench_targets(pipeline, plan, published, targets=targets, output=output, threads=threads,
                                     fleet=fleet, metric=verdict_metric, say=bar.message)
        reports, verdicts, invalid = fb.reports, list(fb.verdicts), fb.invalid
        results = Path(next(iter(fb.target_results.values())))
        paths = {"artifacts": str(output / "artifacts"), **fb.paths,
                 **{f"results[{t}]": p for t, p in fb.target_results.items()}}
    else:
        bar.message(f"benchmarking {len(plan.artifacts)} artifact(s) on target {plan.target}")
        report = _bench(plan, pipeline, published, threads=threads, progress=bar, device=device,
                        device_target=target)
        from edgekit.bench.results import write_report

        report, verdicts = with_verdict(report, pipeline, metric=verdict_metric)
        results = write_report(report, output / "results.json")
        paths = {"results": str(results), "artifacts": str(output / "artifacts")}
        paths.update(_write_reports(report, output))
        reports = {plan.target: report}
    t_bench, c_bench = time.perf_counter_ns() - t_bench, time.process_time_ns() - c_bench
    if started_ray:
        import ray

        ray.shutdown()
    checks = tuple(c if not many else replace(c, row=f"{t}: {c.row}")
                   for t, rep in reports.items() for c in check_run(rep, pipeline.gate))
    run_id = None
    if history:
        from edgekit.history.store import append_report

        ids = [append_report(rep, db=history_db) for rep in reports.values()]
        run_id = ids[0] if len(ids) == 1 else ",".join(ids)
    seconds = (time.perf_counter_ns() - t_start) / 1e9
    timings = {"seconds": seconds, "cpu_seconds": (time.process_time_ns() - c_start) / 1e9,
               "steps_seconds": sum(o.seconds for o in outcomes),
               "steps_cpu_seconds": sum(o.cpu_seconds for o in outcomes),
               "bench_seconds": t_bench / 1e9, "bench_cpu_seconds": c_bench / 1e9}
    result = RunResult(plan, tuple(outcomes), results, paths, run_id, checks, seconds, tuple(published), timings,
                       verdicts=tuple(verdicts), target_results={t: p for t, p in paths.items()
                                                                 if t.startswith("results[")},
                       targets=tuple(targets), invalid_jobs=invalid)
    paths["run"] = str(_write_run_json(result, output))
    return result


def _set_aside(path: Path) -> Path | None:
    """Move an artifact a failed check left at a cache path to ``<path>.failed`` (replacing an older one)."""
    import shutil

    if not path.exists():
        return None
    dest = path.with_name(path.name + ".failed")
    if dest.exists():
        shutil.rmtree(dest)
    path.rename(dest)
    return dest
