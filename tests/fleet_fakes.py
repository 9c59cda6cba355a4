"""Test doubles for sweeps over many devices (importable by Ray's worker processes: module-level and picklable).

* :class:`FakeSession` is a device whose bench answers in ``delay_s`` with a report synthesized from the job
  (rows built like ``test_gate``'s, FP32 reference faithful INT8), proves exclusivity with an O_EXCL lock file
  in its own directory (a second bench entering while one runs is written to ``overlaps``), and can
  "disappear" after ``die_after`` jobs (DeviceLost, what the transport adapter raises for a dropped link).
* :class:`LoopbackConnection` is a transport with the SSH Connection's five methods (connect, run with a
  timeout, put, get, close) on this machine: ``put``/``get`` copy, ``run`` runs the argv here in a new
  session and kills its process group at the timeout. A device is "unplugged" by creating ``root/unplugged``.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.core.errors import EdgekitError


class ConnectionDropped(EdgekitError):
    """Named like the SSH transport's error for a connection that went away."""


class RemoteTimeout(EdgekitError):
    """Named like the SSH transport's error for a command past its timeout."""


class RemoteCommandFailed(EdgekitError):
    """A remote command exited non-zero (the device itself is fine)."""


def _rows_for(job: Any, speed: float, int8_ratio: float, seed: int) -> Any:
    from tests.test_gate import LAB, latency, predictions, report, row

    pred = predictions(LAB, wrong=200)
    p50 = 5.0 * speed * (1.0 if job.precision == "fp32" else int8_ratio)
    r = row(pred=pred, labels=LAB, lat=latency(p50, 0.02, seed=seed), model=job.model, precision=job.precision,
            runtime="onnxruntime", artifact=job.name)
    return report(r)


@dataclass
class FakeSession:
    target: str
    root: str
    speed: float = 1.0  # FP32 p50 is 5 ms x speed
    int8_ratio: float = 0.4  # INT8 p50 / FP32 p50 on this device
    delay_s: float = 0.2
    die_after: int | None = None  # the device disappears after this many jobs
    opened: bool = field(default=False)

    def open(self) -> None:
        Path(self.root).mkdir(parents=True, exist_ok=True)
        if (Path(self.root) / "unplugged").exists():
            raise ConnectionDropped(f"{self.target} does not answer")
        self.opened = True

    def _count(self) -> int:
        f = Path(self.root) / "count"
        n = int(f.read_text()) if f.exists() else 0
        tmp = f.with_name(f"count.{os.getpid()}.tmp")
        tmp.write_text(str(n + 1))
        os.replace(tmp, f)  # a host killed here leaves the old count or the new one, never an empty file
        return n

    def bench(self, job: Any, *, timeout_s: float) -> Any:
        from edgekit.pipeline.executors import DeviceLost

        root = Path(self.root)
        n = self._count()
        if self.die_after is not None and n >= self.die_after:
            (root / "unplugged").touch()
        if (root / "unplugged").exists():
            raise DeviceLost(f"{self.target}: connection closed by remote host")
        lock = root / "busy"
        fd = _lock(lock, job.name)
        if fd is None:
            try:
                holder = lock.read_text()
            except FileNotFoundError:
                holder = "another bench (just released)"
            with open(root / "overlaps", "a") as f:
                f.write(f"{job.name} entered while {holder} ran\n")
        try:
            time.sleep(self.delay_s)
            return _rows_for(job, self.speed, self.int8_ratio, seed=n)
        finally:
            if fd is not None:
                os.close(fd)
                lock.unlink()

    def close(self) -> None:
        self.opened = False


def _lock(lock: Path, what: str) -> int | None:
    """A lock file holding "pid job", created atomically with its content (link of a written temp file); a
    lock whose process is dead (a SIGKILLed host) is taken over. Returns an open fd (closed on release)."""
    import threading

    tmp = lock.with_name(f".busy.{os.getpid()}.{threading.get_ident()}")
    tmp.write_text(f"{os.getpid()} {what}")
    try:
        for _ in range(2):
            try:
                os.link(tmp, lock)
            except FileExistsError:
                try:
                    pid = int(lock.read_text().split()[0])
                    os.kill(pid, 0)
                except ProcessLookupError:
                    lock.unlink(missing_ok=True)  # its holder is gone
                    continue
                except FileNotFoundError:
                    continue
                return None
            return os.open(lock, os.O_RDONLY)
        return None
    finally:
        tmp.unlink(missing_ok=True)


@dataclass(frozen=True)
class FakeFactory:
    """target -> FakeSession; per-device settings by device name (``device:a`` -> ``a``)."""

    root: str
    devices: dict[str, dict[str, Any]]

    def __call__(self, target: str) -> FakeSession:
        name = target.split(":", 1)[-1]
        return FakeSession(target=target, root=str(Path(self.root) / name), **self.devices.get(name, {}))


@dataclass
class LoopbackConnection:
    """The SSH Connection's interface, on this machine (a "device" whose filesystem is this one)."""

    root: str
    connected: bool = False
    commands: list[list[str]] = field(default_factory=list)

    def _alive(self) -> None:
        if (Path(self.root) / "unplugged").exists():
            raise ConnectionDropped(f"loopback device {self.root}: connection closed by remote host")

    def connect(self) -> LoopbackConnection:
        Path(self.root).mkdir(parents=True, exist_ok=True)
        self._alive()
        self.connected = True
        return self

    def run(self, argv: list[str], *, timeout_s: float, check: bool = True, **_: Any) -> Any:
        self._alive()
        self.commands.append(list(argv))
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True,
                                text=True)
        try:
            out, err = proc.communicate(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.communicate()
            raise RemoteTimeout(f"{argv[0]} ran past {timeout_s} s and was killed") from None
        self._alive()
        if check and proc.returncode != 0:
            raise RemoteCommandFailed(f"{argv[:3]} exited {proc.returncode}: {err.strip()[-200:]}")
        return subprocess.CompletedProcess(argv, proc.returncode, out, err)

    def put(self, local: Any, remote: str, *, timeout_s: float = 600) -> float:
        self._alive()
        shutil.copytree(local, remote, dirs_exist_ok=True) if Path(local).is_dir() else shutil.copy(local, remote)
        return 0.0

    def get(self, remote: str, local: Any, *, timeout_s: float = 600) -> float:
        self._alive()
        shutil.copy(remote, local)
        return 0.0

    def close(self) -> None:
        self.connected = False


@dataclass(frozen=True)
class LoopbackConnect:
    """A picklable ``connect`` for TransportSession: a new LoopbackConnection on ``root``."""

    root: str

    def __call__(self) -> LoopbackConnection:
        return LoopbackConnection(self.root)


@dataclass(frozen=True)
class MixedFactory:
    """Local targets bench here for real (LocalSession); ``device:*`` targets are FakeFactory's fakes."""

    spec: Any
    fake: FakeFactory

    def __call__(self, target: str) -> Any:
        from edgekit.pipeline.devices import LocalSession

        return self.fake(target) if target.startswith("device:") else LocalSession(target, self.spec)
