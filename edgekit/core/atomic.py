"""Atomic writes and hashing.

Files are written to a temporary name in the same directory, fsynced, then
renamed over the target with :func:`os.replace`; a reader never sees half a
file. A whole artifact directory is assembled in a hidden staging directory
beside the destination and renamed into place only when complete, so an
interrupted export leaves neither a manifest nor a half-written model.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from edgekit.core.errors import OutputError

_CHUNK = 1 << 20


def sha256_file(path: str | os.PathLike[str]) -> str:
    """Hex sha256 of a file, read in chunks."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(_CHUNK), b""):
            h.update(chunk)
    return h.hexdigest()


def sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _public_mode(path: str | os.PathLike[str], *, directory: bool) -> None:
    """Give a temp file or dir the mode a plain open()/mkdir() would have.

    mkstemp/mkdtemp create 0600/0700 entries; an artifact must stay readable
    by the other users and containers a plain file would be readable by.
    """
    os.chmod(path, (0o777 if directory else 0o666) & ~_umask())


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(fd)


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (temp file, fsync, rename)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        _public_mode(tmp, directory=False)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(target.parent)
    return target


def atomic_write_text(path: str | os.PathLike[str], text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False) + "\n")


def check_output_dir(path: str | os.PathLike[str], *, overwrite: bool = False) -> Path:
    """Validate an output directory before any work is done.

    The directory may not exist yet, or exist empty. A non-empty directory is
    refused unless ``overwrite`` is set: nothing the user had is lost.
    """
    out = Path(path)
    if out.exists() and not out.is_dir():
        raise OutputError(f"output path {out} exists and is not a directory", hint="choose another -o")
    if out.is_dir() and any(out.iterdir()) and not overwrite:
        raise OutputError(
            f"output directory {out} is not empty",
            hint="choose a new -o, or pass --overwrite to replace its contents",
        )
    probe_writable(out.resolve().parent, what=str(out))
    return out


def probe_writable(directory: str | os.PathLike[str], *, what: str) -> None:
    """Prove that ``directory`` (or its nearest existing ancestor, where it would be created) takes a new
    entry, by making and removing one, before any work is done. ``os.access`` is not enough: as root it
    answers yes for read-only mounts and pseudo file systems such as /proc."""
    probe = Path(directory)
    while not probe.exists():
        probe = probe.parent
    if not probe.is_dir():
        raise OutputError(f"cannot write {what}: {probe} is not a directory", hint="choose another -o")
    try:
        tmp = tempfile.mkdtemp(prefix=".edgekit-probe-", dir=probe)
    except OSError as e:
        reason = e.strerror or type(e).__name__
        raise OutputError(f"cannot write {what}: {probe} does not take new files ({reason})",
                          hint="choose a writable -o") from None
    os.rmdir(tmp)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # pragma: no cover - someone else's live process
        return True
    return True


def remove_stale_staging(out: Path) -> list[Path]:
    """Remove staging directories left by killed runs (their pid is gone)."""
    removed = []
    for d in out.parent.glob(f".{out.name}.staging-*"):
        pid = d.name.rsplit(".staging-", 1)[1].split("-", 1)[0]
        if d.is_dir() and pid.isdigit() and not _pid_alive(int(pid)):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(d)
    return removed


@contextlib.contextmanager
def staged_dir(dest: str | os.PathLike[str], *, overwrite: bool = False) -> Iterator[Path]:
    """Yield a staging directory that becomes ``dest`` only on success.

    On an exception (or KeyboardInterrupt) the staging directory is removed
    and ``dest`` is left exactly as it was. With ``overwrite`` an existing
    ``dest`` is replaced only after the new content is complete.
    """
    out = check_output_dir(dest, overwrite=overwrite)
    out.parent.mkdir(parents=True, exist_ok=True)
    remove_stale_staging(out)
    stage = Path(tempfile.mkdtemp(prefix=f".{out.name}.staging-{os.getpid()}-", dir=out.parent))
    _public_mode(stage, directory=True)
    try:
        yield stage
        for f in stage.rglob("*"):
            if f.is_file():
                with open(f, "rb") as fh:
                    os.fsync(fh.fileno())
        if out.exists():
            trash = Path(tempfile.mkdtemp(prefix=f".{out.name}.old-", dir=out.parent))
            os.replace(out, trash / out.name)
            os.replace(stage, out)
            shutil.rmtree(trash, ignore_errors=True)
        else:
            os.replace(stage, out)
        _fsync_dir(out.parent)
    except BaseException:
        shutil.rmtree(stage, ignore_errors=True)
        raise
