"""``edgekit run`` over several targets: which targets, their preflight, and the sweep's reports.

A run is a *fleet run* when it has more than one target or any ``device:NAME``
target (``[pipeline] targets = [...]`` or ``--target`` given several times).
The host-side steps run once, as for one target; then every published
artifact is benched on every target through an executor
(:mod:`edgekit.pipeline.executors`, :mod:`edgekit.pipeline.fleet`), and the
run writes ``DIR/targets/<target>/results.json`` per target,
``DIR/report.md`` and ``DIR/report.html`` over all of them (a section per
target and one comparison table, :mod:`edgekit.report.fleet`).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgekit.core.errors import UsageError
from edgekit.pipeline.config import Pipeline
from edgekit.pipeline.devices import BenchSpec, SessionFactory, is_device
from edgekit.pipeline.executors import DEFAULT_JOB_TIMEOUT_S
from edgekit.pipeline.executors import MakeSession


@dataclass(frozen=True)
class FleetOptions:
    """How a fleet run dispatches its benches."""

    targets: tuple[str, ...] = ()  # empty: the pipeline's
    executor: str = "threads"  # or "ray"
    ray_address: str | None = None  # None: a private local Ray instance; "auto": join the running cluster
    ray_num_cpus: int | None = None
    job_timeout_s: float = DEFAULT_JOB_TIMEOUT_S
    sessions: MakeSession | None = None  # None: local targets here, devices from the registry


def resolve_targets(pipeline: Pipeline, target: str | None, fleet: FleetOptions | None) -> list[str]:
    if fleet is not None and fleet.targets:
        targets = list(fleet.targets)
    elif target:
        targets = [target]
    else:
        targets = list(pipeline.targets or (pipeline.target,))
    if len(set(targets)) != len(targets):
        raise UsageError(f"each target once, got {targets}")
    return targets


def is_fleet(targets: Sequence[str]) -> bool:
    return len(targets) > 1 or any(is_device(t) for t in targets)


def bench_spec(pipeline: Pipeline, *, threads: int | None) -> BenchSpec:
    b = pipeline.bench
    return BenchSpec(runtimes=b.runtimes, precisions=b.precisions, batch=tuple(b.batch), data=pipeline.data,
                     eval_size=b.eval_size, min_duration=b.min_duration, min_iterations=b.min_iterations,
                     warmup=b.warmup, threads=threads, seed=pipeline.seed, budget_pts=pipeline.gate.max_top1_drop,
                     command=("edgekit", "run", pipeline.origin), power=b.power)


def factory_for(pipeline: Pipeline, fleet: FleetOptions | None, *, threads: int | None) -> MakeSession:
    spec = bench_spec(pipeline, threads=threads)
    return fleet.sessions if fleet is not None and fleet.sessions is not None else SessionFactory(spec)


def preflight_targets(plan: Any, targets: Sequence[str], factory: MakeSession) -> None:
    """Before any step: every local target and its runtimes exist; every device name resolves (nothing connects)."""
    from edgekit.pipeline.run import preflight

    for t in targets:
        if is_device(t):
            factory(t)  # resolves the device in the registry; opening waits for the sweep
        else:
            preflight(dataclasses.replace(plan, target=t))


@dataclass(frozen=True, eq=False)
class FleetBench:
    reports: dict[str, Any]  # target -> merged BenchReport
    verdicts: tuple[Any, ...]
    paths: dict[str, str]  # report name -> path
    target_results: dict[str, str]  # target -> results.json
    invalid: tuple[str, ...]  # "target/artifact: reason" of every job that did not run
    executor: str
    seconds: float


def bench_targets(pipeline: Pipeline, plan: Any, published: Sequence[Path], *, targets: Sequence[str],
                  output: Path, threads: int | None, fleet: FleetOptions | None, metric: str,
                  say: Any) -> FleetBench:
    """Every published artifact on every target; the per-target reports and the fleet report."""
    from edgekit.pipeline.executors import make_executor
    from edgekit.pipeline.fleet import plan_jobs, run_sweep
    from edgekit.report.fleet import write_fleet_reports

    opts = fleet or FleetOptions()
    factory = factory_for(pipeline, opts, threads=threads)
    executor = make_executor(opts.executor, address=opts.ray_address, num_cpus=opts.ray_num_cpus)
    work = plan_jobs(targets, [(p.name, p) for p in published])
    say(f"benchmarking {len(published)} artifact(s) on {len(targets)} target(s) ({', '.join(targets)}) with the "
        f"{executor.name} executor")
    sweep = run_sweep(work, output=output, factory=factory, executor=executor,
                      spec=bench_spec(pipeline, threads=threads), timeout_s=opts.job_timeout_s, metric=metric,
                      budget_pts=pipeline.gate.max_top1_drop, say=say)
    rows = [(m, r, f"{m}-{r}") for m, r, _ in plan.artifacts]
    paths = write_fleet_reports(sweep.reports, output, rows=rows)
    invalid = tuple(f"{r.job.id}: {r.reason}" for r in sweep.invalid)
    return FleetBench(sweep.reports, sweep.verdicts, paths, dict(sweep.paths), invalid, executor.name, sweep.seconds)
