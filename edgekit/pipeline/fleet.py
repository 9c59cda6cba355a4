"""A sweep: every published artifact benched on every target, devices in parallel, resumable.

:func:`run_sweep` takes the jobs per target (:func:`plan_jobs`), skips the
ones a previous run finished (their report is kept in
``DIR/targets/<target>/jobs/<artifact>.json`` with the artifact's sha256 and
the bench settings; any change redoes the job), runs the rest on an executor
(:mod:`edgekit.pipeline.executors`), persists each finished job as soon as it
ends, and merges each target's jobs into one report
(``DIR/targets/<target>/results.json``): the rows of every job in plan order,
one ``invalid`` row per job that did not run (with the reason), the paired
FP32 references attached across the jobs, and the verdict per model.
``DIR/targets/sweep.json`` records when and where every job ran (the
exclusivity and overhead evidence).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bench.results import ArtifactInfo, BenchReport, BenchResult, load_report
from edgekit.core.atomic import atomic_write_json, atomic_write_text
from edgekit.core.errors import ArtifactError
from edgekit.pipeline.executors import BenchJob, Executor, JobRecord, MakeSession, job_path, lanes, target_dir

log = logging.getLogger(__name__)

_NO_FP32 = "on the same images to compare with"  # attach_references' warning of a job benched alone


@dataclass(frozen=True, eq=False)
class SweepResult:
    reports: dict[str, BenchReport]  # target -> merged report (verdict in extra.verdict)
    records: tuple[JobRecord, ...]  # every job, in plan order (resumed ones included)
    resumed: tuple[str, ...]  # job ids taken from a previous run
    paths: dict[str, str]  # target -> its results.json
    verdicts: tuple[Any, ...] = ()
    seconds: float = 0.0
    executor: str = ""
    timeline: dict[str, Any] = field(default_factory=dict)

    @property
    def invalid(self) -> list[JobRecord]:
        return [r for r in self.records if not r.ok]


def plan_jobs(targets: Sequence[str], artifacts: Sequence[tuple[str, Path]]) -> dict[str, list[BenchJob]]:
    """Every (name, published path) artifact on every target, in order."""
    from edgekit.core.manifest import load_artifact

    infos = []
    for name, path in artifacts:
        m = load_artifact(path).manifest
        infos.append((name, str(path), m.model, str(m.precision)))
    return {t: [BenchJob(t, n, p, model, prec) for n, p, model, prec in infos] for t in targets}


def _artifact_sha(job: BenchJob) -> str:
    from edgekit.core.manifest import load_artifact

    m = load_artifact(job.artifact).manifest
    return str(m.files.get(m.model_file))


def settings_digest(spec: Any) -> str:
    return hashlib.sha256(json.dumps(dataclasses.asdict(spec), sort_keys=True, default=str).encode()).hexdigest()


def _finished(root: Path, job: BenchJob, digest: str) -> BenchReport | None:
    """The report a previous run kept for ``job``, if it was made from the same artifact and settings."""
    path = job_path(root, job)
    if not path.is_file():
        return None
    try:
        rep = load_report(path)
    except ArtifactError as e:
        log.warning("%s: %s; the job runs again", path, e.one_line())
        return None
    kept = rep.extra.get("job") or {}
    if kept.get("artifact_sha256") != _artifact_sha(job) or kept.get("settings") != digest:
        return None
    return rep


def _keep(root: Path, rec: JobRecord, digest: str) -> None:
    if not rec.ok:  # an invalid job is not kept: a rerun redoes it
        return
    rep = dataclasses.replace(rec.report, extra={**rec.report.extra, "job": {
        "target": rec.job.target, "artifact": rec.job.name, "artifact_sha256": _artifact_sha(rec.job),
        "settings": digest, **rec.timing_json()}})
    atomic_write_text(job_path(root, rec.job), rep.to_json_text())


def invalid_row(rec: JobRecord) -> BenchResult:
    """The row of a job that did not run: the whole artifact on that target, with the reason."""
    j = rec.job
    return BenchResult(key=f"{j.name}/*:{j.target}/{j.precision}", artifact=j.name, model=j.model, runtime="*",
                       device=j.target, precision=j.precision, status="invalid", reason=rec.reason)


def merge_jobs(target: str, records: Sequence[JobRecord], *, budget_pts: float | None) -> BenchReport:
    """One report of ``target`` from its jobs' reports (plan order), invalid jobs as invalid rows."""
    from edgekit.bench.reference import attach_references

    oks = [r.report for r in records if r.ok]
    rows: list[BenchResult] = []
    arts: dict[str, ArtifactInfo] = {}
    warnings: list[str] = []
    for rec in records:
        if not rec.ok:
            rows.append(invalid_row(rec))
            continue
        for a in rec.report.artifacts:
            arts.setdefault(a.name, a)
        for r in rec.report.results:
            rows.append(dataclasses.replace(r, reference=None, paired=None,
                                            warnings=tuple(w for w in r.warnings if _NO_FP32 not in w)))
        warnings.extend(w for w in rec.report.warnings if _NO_FP32 not in w)
    rows, ref_warnings = attach_references(rows, budget_pts=budget_pts)
    warnings.extend(ref_warnings)
    warnings.extend(f"{rec.job.name} on {target}: invalid: {rec.reason}" for rec in records if not rec.ok)
    base = oks[0] if oks else None
    profile = dict(base.target) if base is not None else {}
    tgt = {**profile, "name": target, "profile_name": profile.get("name"),
           "description": profile.get("description") or ("every job invalid: no report came back" if base is None
                                                         else "")}
    return BenchReport(target=tgt, settings=dict(base.settings) if base else {},
                       environment=base.environment if base else None, artifacts=tuple(arts.values()),
                       results=tuple(rows), dataset=base.dataset if base else None,
                       created=base.created if base else "", edgekit_version=base.edgekit_version if base else "",
                       command=base.command if base else (), warnings=tuple(dict.fromkeys(warnings)),
                       extra={"jobs": [r.timing_json() for r in records]})


def run_sweep(work: dict[str, list[BenchJob]], *, output: Path, factory: MakeSession, executor: Executor,
              spec: Any, timeout_s: float, metric: str = "p50", budget_pts: float | None = None,
              say: Callable[[str], None] | None = None) -> SweepResult:
    """Run (or resume) the sweep; see the module doc."""
    from edgekit.verdict import judge_report, verdict_json

    say = say or log.info
    t0 = time.perf_counter_ns()
    root = output / "targets"
    digest = settings_digest(spec)
    finished: dict[str, JobRecord] = {}
    todo: dict[str, list[BenchJob]] = {}
    for target, jobs in work.items():
        for job in jobs:
            rep = _finished(root, job, digest)
            if rep is not None:
                kept = rep.extra.get("job") or {}
                finished[job.id] = JobRecord(job, "ok", None, rep, int(kept.get("started_ns", 0)),
                                             int(kept.get("ended_ns", 0)), str(kept.get("worker", "")))
            else:
                todo.setdefault(target, []).append(job)
    if finished:
        say(f"resuming: {len(finished)} job(s) done by an earlier run, {sum(map(len, todo.values()))} to run")

    def on_record(rec: JobRecord) -> None:
        _keep(root, rec, digest)
        say(f"{rec.job.target}: {rec.job.name}: {rec.status}" + (f" ({rec.reason})" if rec.reason else "")
            + f" in {(rec.ended_ns - rec.started_ns) / 1e9:.1f} s")

    new = executor.run(lanes(todo), factory, timeout_s=timeout_s, on_record=on_record) if todo else []
    by_id = {**finished, **{r.job.id: r for r in new}}
    records: list[JobRecord] = []
    reports: dict[str, BenchReport] = {}
    paths: dict[str, str] = {}
    verdicts = []
    for target, jobs in work.items():
        recs = [by_id[j.id] for j in jobs]
        records.extend(recs)
        rep = merge_jobs(target, recs, budget_pts=budget_pts)
        vs = judge_report(rep, metric=metric, budget_pts=budget_pts)
        verdicts.extend(vs)
        rep = dataclasses.replace(rep, extra={**rep.extra, "verdict": verdict_json(vs, metric=metric,
                                                                                   budget_pts=budget_pts)})
        from edgekit.bench.results import write_report

        paths[target] = str(write_report(rep, root / target_dir(target) / "results.json"))
        reports[target] = rep
    seconds = (time.perf_counter_ns() - t0) / 1e9
    timeline = {"schema": "edgekit.sweep", "schema_version": 1, "executor": executor.name, "seconds": seconds,
                "resumed": sorted(finished), "jobs": [r.timing_json() for r in records]}
    atomic_write_json(root / "sweep.json", timeline)
    return SweepResult(reports, tuple(records), tuple(sorted(finished)), paths, tuple(verdicts), seconds,
                       executor.name, timeline)
