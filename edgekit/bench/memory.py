"""Process memory during a run, and model size on disk.

:class:`MemorySampler` is a context manager around the measured window. A
daemon thread reads ``VmRSS`` from ``/proc/self/status`` at ~100 Hz. It
records RSS before, after and the peak sampled in between, plus ``VmHWM``
before and after. VmHWM is the peak RSS over the whole process lifetime, so it
alone cannot say what one window used; but when it *rose* during the window,
the new high was reached inside the window, and it is an exact peak that
sampling might have missed (``peak_rss`` takes the larger of the two).
Where /proc is missing (macOS, Windows), ``resource.getrusage`` gives only the
lifetime peak (``source="getrusage"``).
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from edgekit.core.errors import UsageError

log = logging.getLogger(__name__)

PROC_STATUS = Path("/proc/self/status")
_MB = 1024 * 1024


def read_status_kb(path: str | os.PathLike[str] = PROC_STATUS) -> dict[str, int]:
    """VmRSS / VmHWM (and other kB fields) of a /proc status file; {} when unreadable."""
    out: dict[str, int] = {}
    try:
        text = Path(path).read_text()
    except OSError:
        return out
    for line in text.splitlines():
        key, _, rest = line.partition(":")
        parts = rest.split()
        if len(parts) == 2 and parts[1] == "kB" and parts[0].isdigit():
            out[key] = int(parts[0])
    return out


def _getrusage_peak_bytes() -> int | None:
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024  # bytes on macOS, KiB on Linux


@dataclass(frozen=True)
class MemoryResult:
    """Memory in MiB; None where the platform cannot tell."""

    rss_before_mb: float | None
    rss_after_mb: float | None
    peak_rss_mb: float | None  # peak during the window
    hwm_before_mb: float | None  # process lifetime peak before the window
    hwm_after_mb: float | None
    samples: int
    interval_s: float
    source: str  # procfs or getrusage

    @property
    def peak_increase_mb(self) -> float | None:
        """Peak during the window above the RSS at its start."""
        if self.peak_rss_mb is None or self.rss_before_mb is None:
            return None
        return self.peak_rss_mb - self.rss_before_mb

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["peak_increase_mb"] = self.peak_increase_mb
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> MemoryResult:
        kw: dict[str, Any] = {k: d.get(k) for k in ("rss_before_mb", "rss_after_mb", "peak_rss_mb", "hwm_before_mb",
                                                     "hwm_after_mb", "samples", "interval_s", "source")}
        return cls(**kw)


class MemorySampler:
    """Samples this process's RSS in a background thread while the ``with`` block runs."""

    def __init__(self, *, interval_s: float = 0.01, status_path: str | os.PathLike[str] = PROC_STATUS) -> None:
        if not interval_s > 0:
            raise UsageError(f"interval_s must be > 0, got {interval_s}")
        self.interval_s = interval_s
        self.status_path = Path(status_path)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._peak_kb = 0
        self._samples = 0
        self._before: dict[str, int] = {}
        self.result: MemoryResult | None = None

    def _sample(self) -> None:
        rss = read_status_kb(self.status_path).get("VmRSS")
        if rss is not None:
            self._peak_kb = max(self._peak_kb, rss)
            self._samples += 1

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def __enter__(self) -> MemorySampler:
        self._before = read_status_kb(self.status_path)
        self._peak_kb = self._before.get("VmRSS", 0)
        self._samples = 0
        self._stop.clear()
        if self._before:
            self._thread = threading.Thread(target=self._run, name="edgekit-memory", daemon=True)
            self._thread.start()
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        self.result = self._finish()

    def _finish(self) -> MemoryResult:
        if not self._before:
            peak = _getrusage_peak_bytes()
            peak_mb = peak / _MB if peak is not None else None
            return MemoryResult(None, None, None, None, peak_mb, 0, self.interval_s, "getrusage")
        self._sample()
        after = read_status_kb(self.status_path)
        peak_kb = self._peak_kb
        hwm_b, hwm_a = self._before.get("VmHWM"), after.get("VmHWM")
        if hwm_b is not None and hwm_a is not None and hwm_a > hwm_b:
            peak_kb = max(peak_kb, hwm_a)  # a new lifetime high can only have happened inside the window

        def mb(kb: int | None) -> float | None:
            return kb / 1024 if kb is not None else None

        return MemoryResult(rss_before_mb=mb(self._before.get("VmRSS")), rss_after_mb=mb(after.get("VmRSS")),
                            peak_rss_mb=mb(peak_kb), hwm_before_mb=mb(hwm_b), hwm_after_mb=mb(hwm_a),
                            samples=self._samples, interval_s=self.interval_s, source="procfs")


def model_size_bytes(path: str | os.PathLike[str], *, exclude: tuple[str, ...] = ("edgekit.json",)) -> int:
    """Size on disk of a model file, or of every file in a model directory (ONNX external
    data, OpenVINO .xml + .bin), except ``exclude`` names and hidden files."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    if p.is_dir():
        return sum(f.stat().st_size for f in p.rglob("*")
                   if f.is_file() and f.name not in exclude and not f.name.startswith("."))
    raise UsageError(f"model path {p} does not exist")
