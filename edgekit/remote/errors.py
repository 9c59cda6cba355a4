"""Faults of remote runs. Setup faults are :class:`~edgekit.core.errors.UsageError`s (exit 2); a fault during a
measurement turns the rows into ``invalid`` ones and the run exits 1 (see :mod:`edgekit.remote.remote_bench`)."""

from __future__ import annotations

from edgekit.core.errors import UsageError


class RemoteError(UsageError):
    """A remote step failed (exit 2 when it happens during setup)."""


class HostUnreachable(RemoteError):
    """The device does not answer: wrong name, port refused, network down."""


class AuthRefused(RemoteError):
    """The device refused the key (edgekit never uses passwords)."""


class HostKeyRefused(RemoteError):
    """Unknown or changed host key under strict checking."""


class ConnectionDropped(RemoteError):
    """The connection broke after it was up."""


class RemoteTimeout(RemoteError):
    """A remote command passed its wall-clock limit and was stopped."""


class DevicePythonError(RemoteError):
    """No Python, or one too old, on the device."""


class DeviceDiskFull(RemoteError):
    """Not enough free space in the device's workdir."""


class UnknownDevice(UsageError):
    """A device name that is not registered."""
