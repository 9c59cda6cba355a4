"""The sampler thread that runs beside a measured window (or an idle baseline).

It reads the power source every ``1 / rate_hz`` seconds and the thermal and
clock state every ``state_every_s`` (vcgencmd's throttle bits, a subprocess,
at most every second), plus one read of each at the start and at the stop, so
that energy counters bracket the window exactly. All times are
``time.perf_counter_ns()`` of the process that runs the model.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType
from typing import Self

from edgekit.telemetry.base import PowerReading, PowerSource
from edgekit.telemetry.state import Snapshot, StateProbe

log = logging.getLogger(__name__)


class WindowMonitor:
    def __init__(self, source: PowerSource | None, probe: StateProbe | None, *, rate_hz: float = 20.0,
                 state_every_s: float = 0.5, command_every_s: float = 1.0,
                 clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.source, self.probe, self.clock = source, probe, clock
        self.period_s = 1.0 / rate_hz
        self.state_every_ns = int(state_every_s * 1e9)
        self.command_every_ns = int(command_every_s * 1e9)
        self.readings: list[PowerReading] = []
        self.snapshots: list[Snapshot] = []
        self.t0_ns: int | None = None
        self.t1_ns: int | None = None
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _read(self) -> None:
        if self.source is None:
            return
        try:
            self.readings.append(self.source.read())
        except Exception as e:  # noqa: BLE001 - a failed read is a missing sample, counted and reported
            if len(self.errors) < 5:
                self.errors.append(f"{type(e).__name__}: {e}")

    def _snap(self, with_commands: bool) -> None:
        if self.probe is not None:
            self.snapshots.append(self.probe.snapshot(with_commands=with_commands))

    def _loop(self) -> None:
        last_state = last_cmd = self.clock()
        while not self._stop.wait(self.period_s):
            self._read()
            now = self.clock()
            if now - last_state >= self.state_every_ns:
                cmd = now - last_cmd >= self.command_every_ns
                self._snap(cmd)
                last_state = now
                if cmd:
                    last_cmd = now

    def start(self) -> None:
        self._snap(True)
        self._read()
        self.t0_ns = self.clock()
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="edgekit-telemetry")
        self._thread.start()

    def stop(self) -> None:
        self.t1_ns = self.clock()
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10.0)
            if self._thread.is_alive():  # a source read stuck in the kernel: give up on it, say so
                self.errors.append("the sampler thread did not stop within 10 s")
        self._read()
        self._snap(True)

    def on_window(self, event: str) -> None:
        """The harness hook: ``start`` right before the measured window, ``stop`` right after it."""
        (self.start if event == "start" else self.stop)()

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    @property
    def rate_hz(self) -> float | None:
        if self.t0_ns is None or self.t1_ns is None or self.t1_ns <= self.t0_ns:
            return None
        n = sum(1 for r in self.readings if self.t0_ns <= r.t_ns <= self.t1_ns)
        return n / ((self.t1_ns - self.t0_ns) / 1e9)
