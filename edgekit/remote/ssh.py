"""The SSH transport: the system OpenSSH client (``ssh``, ``scp``), multiplexed over one ControlMaster.

Why the system client (README, "Benchmark on a device over SSH"): the user's ``~/.ssh/config`` aliases,
ProxyJump, IdentityFile, ports, certificates and the ssh-agent work exactly as they do for ``ssh``, with no
second implementation of host-key policy or key handling in edgekit, and no extra Python dependency on the
workstation. Host keys are checked strictly (``StrictHostKeyChecking=yes``; ``accept-new`` only when asked),
``BatchMode=yes`` so nothing ever prompts for or stores a password.

API for a thread-per-device dispatcher: :class:`Connection` is a context manager with :meth:`~Connection.connect`,
:meth:`~Connection.run` (wall-clock timeout, optional live line callback), :meth:`~Connection.put`,
:meth:`~Connection.get` and :meth:`~Connection.close`; one Connection per device, used from one thread.
Errors are :class:`~edgekit.remote.errors.RemoteError` subclasses that say which fault it was.
"""

from __future__ import annotations

import logging
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from edgekit.remote.errors import (
    AuthRefused,
    ConnectionDropped,
    HostKeyRefused,
    HostUnreachable,
    RemoteError,
    RemoteTimeout,
)

log = logging.getLogger(__name__)

#: exit status of ``ssh`` itself failing (as opposed to the remote command's)
SSH_FAILED = 255


@dataclass(frozen=True)
class SshTarget:
    """Where and how to reach a device. ``host`` may be an alias of the user's ssh config."""

    host: str
    user: str | None = None
    port: int | None = None
    config_file: str | None = None  # ssh -F (default: the user's ~/.ssh/config)
    identity_file: str | None = None  # ssh -i
    known_hosts: str | None = None  # UserKnownHostsFile (default: OpenSSH's)
    accept_new_host_key: bool = False  # StrictHostKeyChecking=accept-new instead of yes
    connect_timeout_s: int = 10
    options: tuple[str, ...] = ()  # extra "-o Key=Value" entries (no secrets)

    @property
    def display(self) -> str:
        user = f"{self.user}@" if self.user else ""
        port = f":{self.port}" if self.port else ""
        return f"{user}{self.host}{port}"

    @classmethod
    def parse(cls, spec: str, **kw: object) -> SshTarget:
        """``[USER@]HOST[:PORT]`` -> SshTarget (an ssh-config alias is a HOST)."""
        from edgekit.core.errors import UsageError

        user, _, rest = spec.rpartition("@")
        host, port = rest, None
        if rest.count(":") == 1:
            host, p = rest.split(":")
            if not p.isdigit() or not 0 < int(p) < 65536:
                raise UsageError(f"--host {spec!r}: port {p!r} is not a number 1-65535",
                                 hint="write [USER@]HOST[:PORT], e.g. nvidia@orin.lab:22")
            port = int(p)
        if not host or any(c.isspace() for c in spec):
            raise UsageError(f"--host {spec!r} is not [USER@]HOST[:PORT]", hint="e.g. nvidia@orin.lab or an ssh alias")
        return cls(host=host, user=user or None, port=port, **kw)  # type: ignore[arg-type]


@dataclass(frozen=True)
class Completed:
    argv: tuple[str, ...]
    returncode: int
    stdout: str
    stderr: str
    seconds: float


def classify(stderr: str, target: SshTarget) -> RemoteError:
    """An ``ssh`` failure (exit 255) -> the fault it was, with the fix."""
    low = stderr.lower()
    where = target.display
    last = " ".join(stderr.strip().splitlines()[-1:]) if stderr.strip() else "no message"
    if "host key verification failed" in low or "remote host identification has changed" in low:
        changed = "changed" in low
        return HostKeyRefused(
            f"{where}: host key {'CHANGED' if changed else 'unknown'}; refused (strict host-key checking)",
            hint=("verify the device's new key out of band, then remove the old one with 'ssh-keygen -R HOST'"
                  if changed else "connect once with 'ssh HOST' and check the fingerprint, or pass "
                  "--accept-new-host-key to trust a first-seen key (OpenSSH accept-new)"))
    if "permission denied" in low or "too many authentication failures" in low or "no supported authentication" in low:
        return AuthRefused(f"{where}: authentication refused ({last})",
                           hint="check that 'ssh HOST true' works without a password: load your key into "
                                "ssh-agent or set IdentityFile in ~/.ssh/config (edgekit never asks for or stores a password)")
    if any(s in low for s in ("connection refused", "could not resolve", "no route to host", "timed out",
                              "network is unreachable", "name or service not known", "connection closed by",
                              "connection reset")):
        return HostUnreachable(f"{where} is unreachable ({last})",
                               hint="check the host name, port and network (does 'ssh HOST true' work?)")
    return ConnectionDropped(f"{where}: the connection closed ({last if stderr.strip() else 'ssh exit 255'})",
                             hint="check 'ssh HOST true' and the device's network")


class Connection:
    """One multiplexed SSH connection to one device (a ControlMaster kept open until :meth:`close`)."""

    def __init__(self, target: SshTarget, *, ssh: str = "ssh", scp: str = "scp") -> None:
        self.target = target
        self._ssh, self._scp = ssh, scp
        self._dir: str | None = None
        self._master: subprocess.Popen[bytes] | None = None
        self.commands_run = 0
        self.bytes_put = 0

    # -- lifecycle ---------------------------------------------------------------------------------------
    def __enter__(self) -> Connection:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _options(self, *, master: bool = False) -> list[str]:
        t = self.target
        opts = ["-o", "BatchMode=yes", "-o", f"StrictHostKeyChecking={'accept-new' if t.accept_new_host_key else 'yes'}",
                "-o", f"ConnectTimeout={t.connect_timeout_s}", "-o", "ServerAliveInterval=5",
                "-o", "ServerAliveCountMax=3", "-o", "LogLevel=ERROR"]
        if self._dir:  # the master is our foreground child (no ControlPersist fork); commands ride on it
            opts += ["-o", f"ControlMaster={'yes' if master else 'no'}", "-o", f"ControlPath={self._dir}/cm-%C",
                     "-o", "ControlPersist=no"]
        if t.config_file:
            opts = ["-F", t.config_file, *opts]
        if t.identity_file:
            opts += ["-i", t.identity_file, "-o", "IdentitiesOnly=yes"]
        if t.known_hosts:
            opts += ["-o", f"UserKnownHostsFile={t.known_hosts}"]
        if t.user:
            opts += ["-o", f"User={t.user}"]
        for o in t.options:
            opts += ["-o", o]
        return opts

    def connect(self) -> Connection:
        """Open the master connection (host key, auth); raises the classified fault."""
        from edgekit.core.errors import UsageError

        if shutil.which(self._ssh) is None or shutil.which(self._scp) is None:
            raise UsageError("the OpenSSH client (ssh, scp) is not installed on this machine",
                             hint="install it: 'sudo apt-get install openssh-client' (or your OS's package)")
        if self._dir is None:
            # a short private dir: ControlPath sockets are limited to ~100 characters
            self._dir = tempfile.mkdtemp(prefix="ek-ssh-", dir="/tmp" if os.path.isdir("/tmp") else None)
            os.chmod(self._dir, 0o700)
        port = ["-p", str(self.target.port)] if self.target.port else []
        argv = [self._ssh, *self._options(master=True), *port, "-N", self.target.host]
        # the master runs in the background (-N, no command); wait until its socket answers
        self._master = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, start_new_session=True)
        deadline = time.monotonic() + self.target.connect_timeout_s + 5
        while time.monotonic() < deadline:
            if self._master.poll() is not None:
                err = self._master.stderr.read().decode(errors="replace") if self._master.stderr else ""
                self._master = None
                self._cleanup_dir()
                raise classify(err, self.target)
            check = subprocess.run([self._ssh, *self._options(), *port, "-O", "check", self.target.host],
                                   capture_output=True, timeout=10, check=False)
            if check.returncode == 0:
                return self
            time.sleep(0.05)
        self.close()
        raise HostUnreachable(f"{self.target.display}: no answer within {self.target.connect_timeout_s + 5} s",
                              hint="check the host name, port and network (does 'ssh HOST true' work?)")

    def close(self) -> None:
        if self._master is not None:
            port = ["-p", str(self.target.port)] if self.target.port else []
            try:
                subprocess.run([self._ssh, *self._options(), *port, "-O", "exit", self.target.host],
                               capture_output=True, timeout=10, check=False)
            except subprocess.TimeoutExpired:
                pass
            if self._master.poll() is None:
                self._master.terminate()
            try:
                self._master.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self._master.kill()
            self._master = None
        self._cleanup_dir()

    def _cleanup_dir(self) -> None:
        if self._dir is not None:
            shutil.rmtree(self._dir, ignore_errors=True)
            self._dir = None

    # -- commands ----------------------------------------------------------------------------------------
    def ssh_argv(self, argv: Sequence[str]) -> list[str]:
        port = ["-p", str(self.target.port)] if self.target.port else []
        return [self._ssh, *self._options(), *port, self.target.host, "--", shlex.join(argv)]

    def run(self, argv: Sequence[str], *, timeout_s: float, stdin: str | bytes | None = None,
            on_line: Callable[[str], None] | None = None, check: bool = True) -> Completed:
        """Run ``argv`` on the device (quoted for its shell) with a wall-clock timeout.

        stdout is returned; stderr lines go to ``on_line`` as they arrive (live progress) and are returned too.
        Without ``stdin``, the remote side's stdin stays open until the command ends, so a killed ``ssh`` is an EOF the
        edgekit agent on the device acts on. ``check``: a non-zero remote exit raises RemoteError.
        """
        cmd = self.ssh_argv(argv)
        self.commands_run += 1
        t0 = time.perf_counter_ns()
        proc = subprocess.Popen(cmd, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                start_new_session=True)
        out: list[bytes] = []
        err: list[str] = []

        def pump_out(f: IO[bytes]) -> None:
            for chunk in iter(lambda: f.read(65536), b""):
                out.append(chunk)

        def pump_err(f: IO[bytes]) -> None:
            for raw in iter(f.readline, b""):
                line = raw.decode(errors="replace").rstrip("\n")
                err.append(line)
                if on_line is not None:
                    on_line(line)

        threads = [threading.Thread(target=pump_out, args=(proc.stdout,), daemon=True),
                   threading.Thread(target=pump_err, args=(proc.stderr,), daemon=True)]
        for th in threads:
            th.start()
        assert proc.stdin is not None
        try:
            if stdin is not None:
                proc.stdin.write(stdin.encode() if isinstance(stdin, str) else stdin)
                proc.stdin.close()  # the remote reads to EOF; without stdin it stays open (the agent's hangup signal)
            try:
                rc = proc.wait(timeout=timeout_s)
            except subprocess.TimeoutExpired:
                self._kill(proc)
                raise RemoteTimeout(f"{self.target.display}: {shlex.join(argv[:3])} ... did not finish in "
                                    f"{timeout_s:g} s; stopped", hint="raise --timeout, or look at the device") from None
        except BaseException:
            self._kill(proc)
            raise
        finally:
            for th in threads:
                th.join(timeout=5)
            try:
                proc.stdin.close()
            except OSError:
                pass
        done = Completed(tuple(argv), rc, b"".join(out).decode(errors="replace"), "\n".join(err),
                         (time.perf_counter_ns() - t0) / 1e9)
        if rc == SSH_FAILED:
            raise classify(done.stderr, self.target)
        if check and rc != 0:
            tail = " | ".join(done.stderr.strip().splitlines()[-3:]) or done.stdout.strip()[-300:]
            raise RemoteError(f"{self.target.display}: {shlex.join(argv[:4])} ... exited {rc}: {tail}")
        return done

    @staticmethod
    def _kill(proc: subprocess.Popen[bytes]) -> None:
        """Stop the local ssh client: its session closes, the device's stdin sees EOF."""
        if proc.poll() is None:
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=5)
            except (ProcessLookupError, subprocess.TimeoutExpired):
                try:
                    os.killpg(proc.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                proc.wait()

    def put(self, local: str | os.PathLike[str], remote: str, *, timeout_s: float = 600) -> float:
        """Copy a file or a directory (recursively) to ``remote``; returns seconds."""
        return self._scp_run([*(["-r"] if Path(local).is_dir() else []), str(local), self._remote(remote)], timeout_s,
                             size=_size(Path(local)))

    def get(self, remote: str, local: str | os.PathLike[str], *, timeout_s: float = 600) -> float:
        """Copy ``remote`` (a file, or a directory recursively) to ``local``; returns seconds."""
        return self._scp_run(["-r", self._remote(remote), str(local)], timeout_s)

    def _remote(self, path: str) -> str:
        return f"{self.target.host}:{path}"

    def _scp_run(self, args: list[str], timeout_s: float, size: int = 0) -> float:
        port = ["-P", str(self.target.port)] if self.target.port else []
        argv = [self._scp, "-q", "-p", *self._options(), *port, *args]
        t0 = time.perf_counter_ns()
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout_s, check=False)
        except subprocess.TimeoutExpired:
            raise RemoteTimeout(f"{self.target.display}: copy did not finish in {timeout_s:g} s") from None
        if p.returncode != 0:
            low = p.stderr.lower()
            if "no space left" in low or "disk quota" in low:
                from edgekit.remote.errors import DeviceDiskFull

                raise DeviceDiskFull(f"{self.target.display}: no space left on the device while copying",
                                     hint="free space in the device's workdir or choose another with --workdir")
            if any(s in low for s in ("host key", "permission denied", "connection", "resolve")):
                raise classify(p.stderr, self.target)
            raise ConnectionDropped(f"{self.target.display}: copy failed: {p.stderr.strip()[-300:]}")
        self.bytes_put += size
        return (time.perf_counter_ns() - t0) / 1e9


def _size(p: Path) -> int:
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())

