"""CPU frequency per core (cpufreq) and the GPU clock (devfreq on Jetson), in MHz.

cpufreq: ``<root>/sys/devices/system/cpu/cpu<N>/cpufreq/{scaling_cur_freq,
scaling_max_freq,cpuinfo_max_freq}`` in kHz. devfreq: ``<root>/sys/class/devfreq/<node>``
whose name (or ``device/of_node/name``) contains ``ga10b``, ``gv11b``,
``gp10b``, ``gpc`` or ``gpu``: ``cur_freq``, ``max_freq`` in Hz, the hardware
maximum is the largest of ``available_frequencies``. A cap (max below the
hardware maximum) is recorded; a downclock alone is DVFS, not throttling.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from edgekit.telemetry.base import read_int, read_text

CPU = Path("sys/devices/system/cpu")
DEVFREQ = Path("sys/class/devfreq")
GPU_NAMES = ("ga10b", "gv11b", "gp10b", "gpc", "gpu")


@dataclass(frozen=True)
class Clock:
    name: str  # cpu0, ..., gpu
    cur_path: Path
    cap_path: Path | None  # the current upper limit
    hw_max_mhz: float | None  # the hardware maximum
    scale: float  # to MHz

    def read_mhz(self) -> float | None:
        v = read_int(self.cur_path)
        return None if v is None else v * self.scale

    def cap_mhz(self) -> float | None:
        v = read_int(self.cap_path) if self.cap_path else None
        return None if v is None else v * self.scale


def find_cpu_clocks(root: Path = Path("/")) -> list[Clock]:
    out = []
    base = root / CPU
    cpus = [p for p in base.glob("cpu*") if re.fullmatch(r"cpu\d+", p.name)] if base.is_dir() else []
    for d in sorted(cpus, key=lambda p: int(p.name[3:])):
        f = d / "cpufreq"
        if not (f / "scaling_cur_freq").exists():
            continue
        hw = read_int(f / "cpuinfo_max_freq")
        out.append(Clock(d.name, f / "scaling_cur_freq", f / "scaling_max_freq",
                         hw / 1000.0 if hw else None, 1 / 1000.0))
    return out


def find_gpu_clock(root: Path = Path("/")) -> Clock | None:
    base = root / DEVFREQ
    for d in sorted(base.glob("*")) if base.is_dir() else []:
        names = (d.name + " " + (read_text(d / "device" / "of_node" / "name") or "")).lower()
        if not any(g in names for g in GPU_NAMES):
            continue
        avail = [int(x) for x in (read_text(d / "available_frequencies") or "").split() if x.isdigit()]
        hw = max(avail) if avail else read_int(d / "max_freq")
        return Clock("gpu", d / "cur_freq", d / "max_freq", hw / 1e6 if hw else None, 1e-6)
    return None


def read_clocks(clocks: list[Clock]) -> dict[str, float]:
    return {c.name: v for c in clocks if (v := c.read_mhz()) is not None}


def capped(clocks: list[Clock]) -> dict[str, tuple[float, float]]:
    """Clocks whose current limit is below their hardware maximum: name -> (limit MHz, hardware max MHz)."""
    out = {}
    for c in clocks:
        cap = c.cap_mhz()
        if cap is not None and c.hw_max_mhz and cap < c.hw_max_mhz * 0.999:
            out[c.name] = (cap, c.hw_max_mhz)
    return out
