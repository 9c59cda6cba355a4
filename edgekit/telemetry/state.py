"""Thermal and clock state of the machine the model runs on: discovered once, read as snapshots.

:class:`StateProbe` finds the thermal zones, CPU and GPU clocks, Jetson
over-current counters and (through ``vcgencmd``) the Raspberry Pi throttle
bits under an injectable root and command runner; :meth:`StateProbe.snapshot`
reads them all. What it cannot read is listed in :attr:`StateProbe.absent`
with the reason, so a report can say why a column is empty.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from edgekit.telemetry import clocks as _clocks
from edgekit.telemetry import overcurrent, rpi, thermal
from edgekit.telemetry.base import CommandRunner, run_command


@dataclass(frozen=True)
class Snapshot:
    t_ns: int
    temps_c: dict[str, float] = field(default_factory=dict)
    clocks_mhz: dict[str, float] = field(default_factory=dict)
    oc_events: dict[str, int] = field(default_factory=dict)
    throttled_bits: int | None = None

    @property
    def max_temp_c(self) -> float | None:
        return max(self.temps_c.values()) if self.temps_c else None


class StateProbe:
    def __init__(self, root: Path = Path("/"), *, run: CommandRunner | None = None,
                 use_vcgencmd: bool | None = None, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.root = Path(root)
        self._clock = clock
        self._run = run or run_command
        self.zones = thermal.find_zones(self.root)
        self.cpu_clocks = _clocks.find_cpu_clocks(self.root)
        gpu = _clocks.find_gpu_clock(self.root)
        self.clocks = self.cpu_clocks + ([gpu] if gpu else [])
        self.oc_paths = overcurrent.find_counters(self.root)
        if use_vcgencmd is None:
            use_vcgencmd = run is not None or shutil.which("vcgencmd") is not None
        self.vcgencmd = bool(use_vcgencmd) and rpi.read_throttled(self._run) is not None
        self.absent: dict[str, str] = {}
        if not thermal.read_temps(self.zones):
            self.absent["temperature"] = (f"no readable thermal zone under {self.root / thermal.THERMAL} "
                                          "(containers and VMs often hide them)")
        if not self.cpu_clocks:
            self.absent["cpu clock"] = f"no cpufreq under {self.root / _clocks.CPU} (VM or cpufreq driver not loaded)"
        if gpu is None:
            self.absent["gpu clock"] = "no GPU devfreq node (not a Jetson)"
        if not overcurrent.read_counters(self.oc_paths):
            self.absent["over-current"] = ("no readable Jetson over-current counter (soctherm debugfs: Jetson only, "
                                           "root only)")
        if not self.vcgencmd:
            self.absent["throttle bits"] = "vcgencmd get_throttled not available (Raspberry Pi only)"

    @property
    def trips(self) -> dict[str, tuple[thermal.Trip, ...]]:
        return {z.name: z.trips for z in self.zones if z.trips}

    def snapshot(self, *, with_commands: bool = True) -> Snapshot:
        """Every readable value now; ``with_commands=False`` skips vcgencmd (a subprocess) for fast ticks."""
        return Snapshot(t_ns=self._clock(), temps_c=thermal.read_temps(self.zones),
                        clocks_mhz=_clocks.read_clocks(self.clocks),
                        oc_events=overcurrent.read_counters(self.oc_paths),
                        throttled_bits=rpi.read_throttled(self._run) if self.vcgencmd and with_commands else None)

    def capped(self) -> dict[str, tuple[float, float]]:
        return _clocks.capped(self.clocks)
