"""Sessions the executors drive: the local host, and a remote device over a transport.

* :class:`LocalSession` benches in this process (``cpu`` or any target
  profile measured on this host).
* :class:`TransportSession` drives a device through a transport with the
  interface of :class:`edgekit.remote.ssh.Connection` (``connect``,
  ``run(argv, timeout_s=...)``, ``put``, ``get``, ``close``): it pushes the
  artifact, runs ``edgekit bench`` on the device with the wall-clock timeout
  enforced by the transport, and fetches the results file. Nothing but
  edgekit's device extras is needed on the device (never Ray).
  The transport's errors are mapped by kind: a timeout is
  :class:`~edgekit.pipeline.executors.JobTimedOut` (this job invalid), an
  unreachable host or a dropped connection is
  :class:`~edgekit.pipeline.executors.DeviceLost` (the device's remaining
  jobs invalid), a failed remote command fails only its job.

:class:`SessionFactory` builds them from a target spec and is picklable (the
Ray executor ships it to its actors).
"""

from __future__ import annotations

import dataclasses
import logging
import shlex
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.errors import CheckFailed, UsageError
from edgekit.pipeline.executors import BenchJob, DeviceLost, JobTimedOut

log = logging.getLogger(__name__)

DEVICE_PREFIX = "device:"
#: remote error classes (by name, so this module needs no import of the transport) -> what they mean here
_LOST = ("HostUnreachable", "ConnectionDropped", "AuthRefused", "HostKeyRefused", "DeviceLost")
_TIMEOUT = ("RemoteTimeout", "TimeoutExpired", "JobTimedOut")


def is_device(target: str) -> bool:
    return target.startswith(DEVICE_PREFIX)


def device_name(target: str) -> str:
    name = target[len(DEVICE_PREFIX):] if is_device(target) else target
    if not name or any(c.isspace() or c == "/" for c in name):
        raise UsageError(f"target {target!r}: a device name must be non-empty, without spaces or '/'",
                         hint="write device:NAME, NAME as listed by 'edgekit devices'")
    return name


@dataclass(frozen=True)
class BenchSpec:
    """The bench settings of every job (from the pipeline's ``[bench]``), for a local or a remote bench."""

    runtimes: tuple[str, ...] | None = None
    precisions: tuple[str, ...] | None = None
    batch: tuple[int, ...] = (1,)
    data: str | None = None
    eval_size: int | None = None
    min_duration: float | None = None
    min_iterations: int | None = None
    warmup: float | None = None
    threads: int | None = None
    seed: int = 0
    budget_pts: float | None = None
    command: tuple[str, ...] = ()
    power: str = "auto"  # edgekit bench --power: energy per inference in every job

    def options(self, target: str, artifact: str) -> Any:
        from edgekit.bench.runner import BenchOptions
        from edgekit.telemetry import TelemetryOptions

        return BenchOptions(target=target, artifacts=(artifact,), runtimes=self.runtimes, precisions=self.precisions,
                            batch_sizes=self.batch, data=self.data, eval_size=self.eval_size,
                            min_duration_s=self.min_duration, min_iterations=self.min_iterations,
                            warmup_s=self.warmup, threads=self.threads, seed=self.seed,
                            accuracy_budget_pts=self.budget_pts, command=self.command,
                            telemetry=TelemetryOptions(power=self.power))

    def cli_args(self) -> list[str]:
        """The same settings as ``edgekit bench`` options (for the device's own edgekit)."""
        args: list[str] = []
        for flag, values in (("--runtime", self.runtimes), ("--precision", self.precisions)):
            if values:
                args += [flag, ",".join(values)]
        args += ["--batch", ",".join(str(b) for b in self.batch), "--seed", str(self.seed), "--power", self.power]
        for flag, v in (("--data", self.data), ("--eval-size", self.eval_size), ("--min-duration", self.min_duration),
                        ("--min-iterations", self.min_iterations), ("--warmup", self.warmup),
                        ("--threads", self.threads), ("--budget", self.budget_pts)):
            if v is not None:
                args += [flag, str(v)]
        return args


@dataclass
class LocalSession:
    """Benches on this host, in this process."""

    target: str
    spec: BenchSpec

    def open(self) -> None:
        pass

    def bench(self, job: BenchJob, *, timeout_s: float) -> Any:
        from edgekit.bench.runner import run_bench

        # the host lane serves every local target: each job names its own profile (no transport to time out)
        return run_bench(self.spec.options(job.target, job.artifact))

    def close(self) -> None:
        pass


def _kind(exc: BaseException) -> str | None:
    names = {c.__name__ for c in type(exc).__mro__}
    if names & set(_TIMEOUT):
        return "timeout"
    if names & set(_LOST):
        return "lost"
    return None


def call_transport(target: str, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
    """``fn(*args, **kw)`` with the transport's errors classified: timeout -> JobTimedOut, a lost link ->
    DeviceLost, another edgekit error -> CheckFailed (this job only); anything else is re-raised."""
    try:
        return fn(*args, **kw)
    except Exception as e:
        kind = _kind(e)
        one_line = getattr(e, "one_line", None)
        msg = one_line() if callable(one_line) else f"{type(e).__name__}: {e}"
        if kind == "timeout":
            raise JobTimedOut(f"{target}: {what}: {msg}") from e
        if kind == "lost" or isinstance(e, OSError):
            raise DeviceLost(f"{target}: {what}: {msg}") from e
        if hasattr(e, "one_line"):
            raise CheckFailed(f"{target}: {what} failed: {msg}") from e
        raise


@dataclass
class RemoteBenchSession:
    """A device of the user's registry, benched by ``edgekit bench --device``'s own code
    (:func:`edgekit.remote.remote_bench.run_remote_bench`: probe, provision, push artifacts and data,
    ``edgekit bench`` under the device agent with its wall-clock limit, fetch, clean up) once per job.
    A report that comes back with ``invalid`` rows (the bench killed, timed out, the link lost) is not a
    finished job: it becomes JobTimedOut / DeviceLost / a failed job with that reason, so a rerun redoes it."""

    target: str
    spec: BenchSpec
    device: Any  # edgekit.remote.devices.Device (frozen, picklable)

    def open(self) -> None:
        pass  # each job connects (run_remote_bench holds its connection for the job)

    def bench(self, job: BenchJob, *, timeout_s: float) -> Any:
        from edgekit.remote.remote_bench import RemoteOptions, run_remote_bench  # type: ignore[import-not-found]

        options = dataclasses.replace(self.spec.options("", job.artifact), target=self.device.target or "")
        report = call_transport(self.target, f"bench {job.name}", run_remote_bench, options,
                                RemoteOptions(device=self.device, timeout_s=timeout_s))
        bad = [r for r in report.results if r.status == "invalid"]
        if bad:
            why = bad[0].reason or "the measurement did not complete"
            low = why.lower()
            if "timed out" in low:
                raise JobTimedOut(f"{self.target}: {why}")
            if "connection" in low or "closed" in low:
                raise DeviceLost(f"{self.target}: {why}")
            raise CheckFailed(f"{self.target}: {why}")
        return report

    def close(self) -> None:
        pass


@dataclass
class TransportSession:
    """Benches on a device through a transport (push the artifact, run ``edgekit bench`` there, fetch the results).

    ``connect`` returns an unopened transport (an :class:`edgekit.remote.ssh.Connection` or a test double with
    the same five methods); ``profile`` is the device's target profile; ``workdir`` its scratch directory.
    """

    target: str
    spec: BenchSpec
    connect: Callable[[], Any]
    profile: str
    workdir: str
    python: str = "python3"
    transfer_timeout_s: float = 600.0
    _conn: Any = field(default=None, repr=False)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any, **kw: Any) -> Any:
        return call_transport(self.target, what, fn, *args, **kw)

    def open(self) -> None:
        self._conn = self.connect()
        self._call("connect", self._conn.connect)
        self._call("prepare the workdir", self._conn.run, ["mkdir", "-p", f"{self.workdir}/artifacts",
                                                           f"{self.workdir}/results"], timeout_s=60)

    def bench(self, job: BenchJob, *, timeout_s: float) -> Any:
        from edgekit.bench.results import load_report

        conn = self._conn
        remote_art = f"{self.workdir}/artifacts/{job.name}"
        remote_out = f"{self.workdir}/results/{job.name}.json"
        self._call("clear the old copy", conn.run, ["rm", "-rf", remote_art, remote_out], timeout_s=60)
        self._call(f"push {job.name}", conn.put, job.artifact, remote_art, timeout_s=self.transfer_timeout_s)
        argv = [self.python, "-m", "edgekit.cli.main", "-q", "bench", remote_art, "--target", self.profile,
                *self.spec.cli_args(), "-o", remote_out, "--quiet"]
        done = self._call(f"bench {job.name}", conn.run, argv, timeout_s=timeout_s, check=False)
        code = getattr(done, "returncode", 0)
        if code not in (0, 1):  # 1: the bench ran and a row failed; its results file says which
            tail = " ".join((getattr(done, "stderr", "") or "").strip().splitlines()[-2:])
            raise CheckFailed(f"{self.target}: 'edgekit bench' exited {code} ({tail or 'no message'})",
                              hint=f"run it by hand on the device: {shlex.join(argv)}")
        with tempfile.TemporaryDirectory(prefix="edgekit-fetch-") as tmp:
            local = Path(tmp) / "results.json"
            self._call(f"fetch the results of {job.name}", conn.get, remote_out, local,
                       timeout_s=self.transfer_timeout_s)
            return load_report(local)

    def close(self) -> None:
        if self._conn is not None:
            conn, self._conn = self._conn, None
            conn.close()


@dataclass(frozen=True)
class SessionFactory:
    """target spec -> an unopened session. Device targets are resolved by ``resolve`` (the device registry)."""

    spec: BenchSpec
    resolve: Callable[[str], TransportSession] | None = None

    def __call__(self, target: str) -> Any:
        if not is_device(target):
            return LocalSession(target, self.spec)
        name = device_name(target)
        if self.resolve is not None:
            return dataclasses.replace(self.resolve(name), target=target, spec=self.spec)
        return registry_session(name, target, self.spec)


def registry_session(name: str, target: str, spec: BenchSpec) -> Any:
    """A session for a device of the user's registry (``edgekit devices``, the remote-devices package);
    an unknown name is an error here, before any step runs."""
    import importlib.util

    if importlib.util.find_spec("edgekit.remote") is None or \
            importlib.util.find_spec("edgekit.remote.remote_bench") is None:
        raise UsageError(f"target {target!r} needs edgekit's remote devices (edgekit.remote), which this build "
                         "does not have", hint="bench the devices with a build that has 'edgekit devices', "
                                               "or give local targets only")
    from edgekit.remote.devices import get_device  # type: ignore[import-not-found]

    return RemoteBenchSession(target=target, spec=spec, device=get_device(name))
