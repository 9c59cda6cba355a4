"""Intel RAPL energy counters through powercap sysfs.

``<root>/sys/class/powercap/intel-rapl:<pkg>/`` with ``name`` (``package-0``),
``energy_uj`` and ``max_energy_range_uj``; children ``intel-rapl:<pkg>:<k>``
(``core``, ``uncore``, ``dram``). The energy of the CPU package scope is the
sum of the packages plus their ``dram`` zones where present (core and uncore
are inside the package and are recorded as rails, not added). A counter that
went down wrapped: ``max_energy_range_uj`` is added. Since Linux 5.10
(CVE-2020-8694) ``energy_uj`` is readable by root only; most VMs have no RAPL.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edgekit.telemetry.base import (
    PowerReading,
    Scope,
    SourceName,
    Unavailable,
    read_int,
    read_text,
)

POWERCAP = Path("sys/class/powercap")
HOW_TO_ENABLE = ("run as root, or let your group read the counters: a udev rule "
                 "'SUBSYSTEM==\"powercap\", ACTION==\"add\", RUN+=\"/bin/chmod g+r /sys%p/energy_uj\"' or "
                 "'sudo chmod o+r /sys/class/powercap/intel-rapl:*/energy_uj /sys/class/powercap/intel-rapl:*:*/energy_uj'")


@dataclass
class Zone:
    name: str  # package-0, core, uncore, dram
    path: Path
    max_range_uj: int
    counted: bool  # part of the total (packages and dram)
    last_uj: int | None = None
    wraps: int = 0

    def read_uj(self) -> int | None:
        """Monotonic energy in µJ since the first read (wraps undone); None when unreadable."""
        raw = read_int(self.path / "energy_uj")
        if raw is None:
            return None
        if self.last_uj is not None and raw < self.last_uj:
            self.wraps += 1
        self.last_uj = raw
        return raw + self.wraps * self.max_range_uj


def energy_delta_uj(e1: int, e2: int, max_range_uj: int) -> int:
    """e2 - e1 for one counter read twice, undoing one wrap-around."""
    return e2 - e1 if e2 >= e1 else e2 + max_range_uj - e1


def find_zones(root: Path) -> list[Zone]:
    base = root / POWERCAP
    zones: list[Zone] = []
    for d in sorted(base.glob("intel-rapl:*")) if base.is_dir() else []:
        name = read_text(d / "name") or d.name
        depth = d.name.count(":")
        if name.startswith("psys"):
            continue
        counted = depth == 1 or name == "dram"
        zones.append(Zone(f"{name}" if depth == 1 else f"{d.name.split(':')[1]}:{name}", d,
                          read_int(d / "max_energy_range_uj") or 0, counted))
    return zones


class RaplSource:
    name = SourceName.RAPL
    kind = "energy"
    scope = Scope.CPU_PACKAGE

    def __init__(self, zones: list[Zone], *, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.zones = zones
        self._clock = clock
        counted = [z.name for z in zones if z.counted]
        dram = any(z.counted and z.name.endswith("dram") for z in zones)
        self.detail = ("RAPL " + "+".join(counted)
                       + ("" if dram else " (no dram zone: memory, board, fans and PSU not included)"))

    def read(self) -> PowerReading:
        t = self._clock()
        total = 0.0
        rails: dict[str, float] = {}
        for z in self.zones:
            uj = z.read_uj()
            if uj is None:
                return PowerReading(t_ns=t)
            rails[z.name] = uj / 1000.0
            if z.counted:
                total += uj / 1000.0
        return PowerReading(t_ns=t, energy_mj=total, rails_mw={})  # per-zone energies stay internal

    def close(self) -> None:
        pass


def probe_rapl(root: Path = Path("/"), *, clock: Callable[[], int] = time.perf_counter_ns) -> RaplSource | Unavailable:
    zones = find_zones(root)
    if not zones:
        return Unavailable(SourceName.RAPL, f"no intel-rapl zone under {root / POWERCAP} (not an Intel/AMD CPU "
                           "with RAPL, or a virtual machine: most hypervisors do not expose it)",
                           fix="measure on bare metal with the intel_rapl_common module loaded")
    unreadable = [z for z in zones if read_int(z.path / "energy_uj") is None]
    if unreadable:
        who = "root" if os.geteuid() == 0 else f"uid {os.geteuid()}"
        return Unavailable(SourceName.RAPL, f"{unreadable[0].path / 'energy_uj'} is not readable by {who} "
                           "(root-only since Linux 5.10, CVE-2020-8694)", fix=HOW_TO_ENABLE)
    return RaplSource(zones, clock=clock)
