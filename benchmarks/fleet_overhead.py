"""Scheduling overhead of the Ray executor against the default one (a thread per device), on the same sweep.

The sweep: ``--devices`` devices x ``--jobs`` jobs each, every job a fixed ``--job-s`` sleep on its device
(a device session that does nothing else, so what is measured is the dispatch, not a bench). A perfect
dispatcher finishes in ``jobs x job_s`` (devices in parallel, each one job at a time). For each executor,
``--rounds`` interleaved rounds measure:

* **sweep wall time** of ``executor.run`` and its **overhead** over the ideal, per job;
* **gap**: on each device, the time between one job's end and the next job's start (the per-job
  dispatch cost: the driver's reaction, the actor call);
* for Ray, **start-up**: ``ray.init`` + the first actor round trip, and **shutdown**, measured apart
  (a CLI run pays them once per run; a session that keeps Ray up pays them once).

Run: ``PYTHONPATH=. .venv/bin/python benchmarks/fleet_overhead.py`` (needs ``edgekit[ray]``); writes
``results/fleet_overhead.{json,md}``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_results  # noqa: E402
from edgekit.pipeline.executors import BenchJob, JobRecord, ThreadExecutor  # noqa: E402


@dataclass
class SleepSession:
    """A device whose every bench is a ``seconds`` sleep."""

    target: str
    seconds: float

    def open(self) -> None:
        pass

    def bench(self, job: BenchJob, *, timeout_s: float) -> dict[str, Any]:
        time.sleep(self.seconds)
        return {"job": job.id}

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class SleepFactory:
    seconds: float

    def __call__(self, target: str) -> SleepSession:
        return SleepSession(target, self.seconds)


def work(devices: int, jobs: int) -> dict[str, list[BenchJob]]:
    return {f"device:d{i}": [BenchJob(f"device:d{i}", f"a{j}", "-", "m", "fp32") for j in range(jobs)]
            for i in range(devices)}


def gaps_ms(records: list[JobRecord]) -> list[float]:
    out = []
    by: dict[str, list[JobRecord]] = {}
    for r in records:
        by.setdefault(r.job.target, []).append(r)
    for recs in by.values():
        recs.sort(key=lambda r: r.started_ns)
        out += [(b.started_ns - a.ended_ns) / 1e6 for a, b in zip(recs, recs[1:])]
    return out


def one(executor: Any, w: dict[str, list[BenchJob]], factory: SleepFactory) -> tuple[float, float, list[JobRecord]]:
    """(sweep wall s, s from the call to the last device's first job start, records)."""
    t0 = time.perf_counter_ns()
    recs = executor.run(w, factory, timeout_s=60, on_record=lambda r: None)
    wall = (time.perf_counter_ns() - t0) / 1e9
    firsts = {}
    for r in recs:
        firsts[r.job.target] = min(firsts.get(r.job.target, r.started_ns), r.started_ns)
    return wall, (max(firsts.values()) - t0) / 1e9, recs


def git_commit() -> str | None:
    try:
        return subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True,
                              cwd=Path(__file__).parent).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=4)
    ap.add_argument("--jobs", type=int, default=10)
    ap.add_argument("--job-s", type=float, default=0.2)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--num-cpus", type=int, default=2)
    args = ap.parse_args()
    import ray

    from edgekit.pipeline.ray_executor import RayExecutor, resource_name

    os.environ["RAY_AUTH_MODE"] = "disabled"
    w, factory = work(args.devices, args.jobs), SleepFactory(args.job_s)
    ideal = args.jobs * args.job_s
    t0 = time.perf_counter_ns()
    ray.init(num_cpus=args.num_cpus, resources={resource_name(t): 1 for t in w}, include_dashboard=False,
             log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": str(Path(__file__).resolve().parents[1]),
                                                            "RAY_AUTH_MODE": "disabled"}})
    init_s = (time.perf_counter_ns() - t0) / 1e9
    first_s, _, _ = one(RayExecutor(), work(args.devices, 1), SleepFactory(0.0))  # actor start-up, first round trip
    results: dict[str, dict[str, list[float]]] = {k: {"wall": [], "gap": [], "start": []} for k in ("threads", "ray")}
    for _ in range(args.rounds):  # interleaved: both see the same machine state
        for name, ex in (("threads", ThreadExecutor()), ("ray", RayExecutor())):
            wall, start, recs = one(ex, w, factory)
            assert all(r.ok for r in recs), [r.reason for r in recs if not r.ok]
            results[name]["wall"].append(wall)
            results[name]["start"].append(start)
            results[name]["gap"].extend(gaps_ms(recs))
    t0 = time.perf_counter_ns()
    ray.shutdown()
    shutdown_s = (time.perf_counter_ns() - t0) / 1e9
    n_jobs = args.devices * args.jobs
    summary = {}
    for name, r in results.items():
        wall = statistics.median(r["wall"])
        start = statistics.median(r["start"])
        summary[name] = {"wall_s_median": wall, "wall_s_all": r["wall"], "overhead_s": wall - ideal,
                         "start_s_median": start, "start_s_all": r["start"],
                         "overhead_after_start_s": wall - start - ideal,
                         "overhead_ms_per_job": 1000 * (wall - ideal) / args.jobs,
                         "gap_ms_median": statistics.median(r["gap"]), "gap_ms_p90": sorted(r["gap"])[
                             int(0.9 * (len(r["gap"]) - 1))]}
    payload = {"sweep": {"devices": args.devices, "jobs_per_device": args.jobs, "job_s": args.job_s,
                         "rounds": args.rounds, "ideal_s": ideal, "num_cpus": args.num_cpus},
               "ray": {"version": ray.__version__, "init_s": init_s, "first_sweep_s": first_s,
                       "shutdown_s": shutdown_s}, "executors": summary, "git_commit": git_commit()}
    t, r = summary["threads"], summary["ray"]
    md = (f"# Scheduling overhead: Ray executor vs the default (thread per device)\n\n"
          f"Sweep: {args.devices} devices x {args.jobs} jobs, each job a {args.job_s:g} s sleep on its device "
          f"({n_jobs} jobs; ideal wall time {ideal:.2f} s); {args.rounds} interleaved rounds, medians; "
          f"Ray {ray.__version__} local instance with num_cpus={args.num_cpus}; commit {payload['git_commit']}.\n\n"
          "| executor | sweep wall s | overhead s | of which start (call -> every device's first job) s "
          "| overhead after the start s | gap between jobs, median ms | gap p90 ms |\n"
          "|---|---:|---:|---:|---:|---:|---:|\n"
          + "".join(f"| {label} | {x['wall_s_median']:.3f} | {x['overhead_s']:.3f} | {x['start_s_median']:.3f} "
                    f"| {x['overhead_after_start_s']:.3f} | {x['gap_ms_median']:.2f} | {x['gap_ms_p90']:.2f} |\n"
                    for label, x in (("threads (default)", t), ("ray (actors per sweep)", r)))
          + "\n"
          f"Ray's fixed costs, paid once per `edgekit run --executor ray` (a private instance): `ray.init` "
          f"{init_s:.2f} s, first sweep (actor start-up and first round trip, 0 s jobs) {first_s:.2f} s, "
          f"shutdown {shutdown_s:.2f} s. Against benches that take tens of seconds to minutes per artifact, "
          "the per-job gap of either executor is noise; Ray's start-up (the instance, then one actor process per "
          "device per sweep) is the cost that counts. Measured on a 2-core host: absolute start-up seconds are this "
          "machine's, not Ray's best.\n")
    j, m = write_results("fleet_overhead", payload, md)
    print(md)
    print(j, m)


if __name__ == "__main__":
    main()
