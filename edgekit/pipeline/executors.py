"""Running the benches of a sweep over many targets: the jobs, the per-device loop, the default dispatcher.

A *job* benches one published artifact on one target. Each target (the local
``cpu``, or ``device:NAME``) is driven through a :class:`DeviceSession`
(open, bench one artifact with a timeout, close); the session of a remote
device wraps the SSH transport (:mod:`edgekit.pipeline.devices`), so the
executors never see SSH.

Rules every executor keeps:

* a device runs its jobs **one at a time**, in plan order (a device is never
  shared by two benches); devices run in parallel; every local target (``cpu``,
  a profile measured on this host) is one *lane*, ``host``: they share this
  machine, so their benches run one after the other too (:func:`lanes`);
* a job that fails, or exceeds its timeout, is recorded ``invalid`` with the
  reason and **never retried** within the run;
* a device that fails or disappears (:class:`DeviceLost`, or a session that
  cannot be opened) marks its own remaining jobs ``invalid`` with the reason;
  the other devices finish;
* every record is handed to ``on_record`` as soon as it exists (the sweep
  persists it there, so a rerun after a crash redoes only what is missing).

:class:`ThreadExecutor` (the default) needs nothing beyond the standard
library: one worker thread per device. :mod:`edgekit.pipeline.ray_executor`
runs the same loop as one Ray actor per device.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from edgekit.core.errors import CheckFailed, EdgekitError

log = logging.getLogger(__name__)

#: the default wall-clock limit of one bench job (per device; the transport enforces it)
DEFAULT_JOB_TIMEOUT_S = 1800.0


class DeviceLost(CheckFailed):
    """The device failed or disappeared (connection dropped, host unreachable): its remaining jobs are invalid."""


class JobTimedOut(CheckFailed):
    """One job exceeded its wall-clock limit and was killed; it is recorded invalid, never retried."""


@dataclass(frozen=True)
class BenchJob:
    """Bench one published artifact on one target."""

    target: str  # "cpu", a profile, or "device:NAME"
    name: str  # the published artifact's name, <model>-<recipe>
    artifact: str  # its path on the host
    model: str
    precision: str  # the artifact's precision (names its row when the job is invalid)

    @property
    def id(self) -> str:
        return f"{self.target}/{self.name}"


@dataclass(frozen=True)
class JobRecord:
    """What became of one job: its report (``ok``) or why it is ``invalid``; when and where it ran."""

    job: BenchJob
    status: str  # "ok" | "invalid"
    reason: str | None = None
    report: Any = None  # a BenchReport when ok
    started_ns: int = 0  # time.perf_counter_ns() (CLOCK_MONOTONIC on Linux: one clock for every process)
    ended_ns: int = 0
    worker: str = ""  # the thread or the actor that ran it
    device_lost: bool = False  # the device failed: the jobs after this one did not run

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def timing_json(self) -> dict[str, Any]:
        return {"job": self.job.id, "status": self.status, "reason": self.reason, "started_ns": self.started_ns,
                "ended_ns": self.ended_ns, "seconds": (self.ended_ns - self.started_ns) / 1e9, "worker": self.worker}


class DeviceSession(Protocol):
    """One target's connection as the executors use it (one session per device, used from one worker)."""

    target: str

    def open(self) -> None: ...

    def bench(self, job: BenchJob, *, timeout_s: float) -> Any: ...  # -> BenchReport

    def close(self) -> None: ...


#: target -> an unopened session for it (must be picklable for the Ray executor)
MakeSession = Callable[[str], DeviceSession]
#: called with every record as soon as it exists (from the worker's thread)
OnRecord = Callable[[JobRecord], None]


def invalid(job: BenchJob, reason: str, *, worker: str = "", lost: bool = False, t0: int | None = None) -> JobRecord:
    now = time.perf_counter_ns()
    return JobRecord(job, "invalid", reason, None, now if t0 is None else t0, now, worker, lost)


def run_job(session: DeviceSession, job: BenchJob, *, timeout_s: float, worker: str) -> JobRecord:
    """One job on an open session; every failure becomes an invalid record with the reason."""
    t0 = time.perf_counter_ns()
    try:
        report = session.bench(job, timeout_s=timeout_s)
    except DeviceLost as e:
        return invalid(job, f"device lost: {e.one_line()}", worker=worker, lost=True, t0=t0)
    except JobTimedOut as e:
        return invalid(job, f"timed out (not retried): {e.one_line()}", worker=worker, t0=t0)
    except EdgekitError as e:
        return invalid(job, e.one_line(), worker=worker, t0=t0)
    except OSError as e:  # the transport's own I/O failed: the device is gone as far as this run knows
        return invalid(job, f"device lost: {type(e).__name__}: {e}", worker=worker, lost=True, t0=t0)
    return JobRecord(job, "ok", None, report, t0, time.perf_counter_ns(), worker)


def run_device(target: str, jobs: Sequence[BenchJob], factory: MakeSession, *, timeout_s: float,
               on_record: OnRecord, worker: str = "") -> list[JobRecord]:
    """The per-device loop both executors run: open, each job in order, stop at a lost device, close."""
    worker = worker or threading.current_thread().name
    records: list[JobRecord] = []

    def keep(rec: JobRecord) -> None:
        records.append(rec)
        on_record(rec)

    try:
        session = factory(target)
        session.open()
    except (EdgekitError, OSError) as e:
        why = e.one_line() if isinstance(e, EdgekitError) else f"{type(e).__name__}: {e}"
        for job in jobs:
            keep(invalid(job, f"device unavailable: {why}", worker=worker, lost=True))
        return records
    try:
        for i, job in enumerate(jobs):
            rec = run_job(session, job, timeout_s=timeout_s, worker=worker)
            keep(rec)
            if rec.device_lost:
                for rest in jobs[i + 1:]:
                    keep(invalid(rest, f"not run: {target} was lost during {job.name} ({rec.reason})",
                                 worker=worker, lost=True))
                break
    finally:
        try:
            session.close()
        except (EdgekitError, OSError) as e:  # closing a dead connection: the records already say why
            log.warning("closing %s failed: %s", target, e)
    return records


class Executor(Protocol):
    name: str

    def run(self, work: dict[str, list[BenchJob]], factory: MakeSession, *, timeout_s: float,
            on_record: OnRecord) -> list[JobRecord]: ...


class ThreadExecutor:
    """The default dispatcher: one worker thread per device, no dependency beyond the standard library."""

    name = "threads"

    def run(self, work: dict[str, list[BenchJob]], factory: MakeSession, *, timeout_s: float,
            on_record: OnRecord) -> list[JobRecord]:
        lock = threading.Lock()

        def locked(rec: JobRecord) -> None:
            with lock:  # progress output and persistence in one order
                on_record(rec)

        results: dict[str, list[JobRecord]] = {}
        errors: dict[str, BaseException] = {}

        def drive(target: str, jobs: list[BenchJob]) -> None:
            try:
                results[target] = run_device(target, jobs, factory, timeout_s=timeout_s, on_record=locked,
                                             worker=f"edgekit-{target}")
            except BaseException as e:  # re-raised on the caller's thread below, never lost
                errors[target] = e

        threads = [threading.Thread(target=drive, args=(t, jobs), name=f"edgekit-{t}", daemon=True)
                   for t, jobs in work.items() if jobs]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        if errors:
            raise next(iter(errors.values()))
        return [rec for t in work for rec in results.get(t, [])]


def make_executor(name: str, *, address: str | None = None, num_cpus: int | None = None) -> Executor:
    """``threads`` (the default) or ``ray`` (``pip install 'edgekit[ray]'``)."""
    from edgekit.core.errors import UsageError

    if name in ("threads", "default"):
        return ThreadExecutor()
    if name == "ray":
        from edgekit.pipeline.ray_executor import RayExecutor

        return RayExecutor(address=address, num_cpus=num_cpus)
    raise UsageError(f"unknown executor {name!r}", hint="use --executor threads (the default) or ray")


#: the lane of every target that is this host (cpu, a profile measured here): they share the machine, so their
#: benches run one after the other like a device's
HOST_LANE = "host"


def lane_of(target: str) -> str:
    """A device is its own lane; every local target shares the host's."""
    return target if target.startswith("device:") else HOST_LANE


def lanes(work: dict[str, list[BenchJob]]) -> dict[str, list[BenchJob]]:
    """The jobs per lane (a lane runs one job at a time), targets in the order given."""
    out: dict[str, list[BenchJob]] = {}
    for target, jobs in work.items():
        out.setdefault(lane_of(target), []).extend(jobs)
    return out


def job_path(root: Path, job: BenchJob) -> Path:
    """Where a finished job's report is kept (the resume state): ``root/<target>/jobs/<artifact>.json``."""
    return root / target_dir(job.target) / "jobs" / f"{job.name}.json"


def target_dir(target: str) -> str:
    """A directory name for a target spec (``device:nano-01`` -> ``device-nano-01``)."""
    return "".join(c if c.isalnum() or c in "-_." else "-" for c in target)
