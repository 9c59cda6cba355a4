"""The one interface every power source implements, and the readings it gives.

A source is either a *power* source (it reads instantaneous power: INA3221
hwmon, tegrastats, the Raspberry Pi 5 PMIC) or an *energy counter* (RAPL,
NVML's total energy): :class:`PowerReading` carries ``power_mw`` or
``energy_mj`` (monotonic: counter wrap-around is undone by the source), never
both required. :class:`Unavailable` is what a probe returns when a source is
absent or unreadable: the reason and how to fix it, never a zero.

Every source reads from an injectable root path or an injectable command
runner, so tests point them at fake sysfs trees and recorded outputs.
"""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol

#: runs an argv and returns its stdout; raises OSError (not found) or subprocess.SubprocessError
CommandRunner = Callable[[Sequence[str]], str]


class Scope(StrEnum):
    """What a power number covers (never the wall: say which part of the device it is)."""

    MODULE_INPUT = "module input"  # Jetson VDD_IN / POM_5V_IN
    MODULE_RAILS = "sum of module rails"  # AGX Orin: no module-input rail
    SOC_RAILS = "SoC rails"  # Raspberry Pi 5 PMIC sum (no conversion losses, no USB)
    CPU_PACKAGE = "CPU package"  # RAPL package (+ dram when that zone exists)
    GPU_BOARD = "GPU board"  # NVML


class SourceName(StrEnum):
    HWMON = "ina3221"
    TEGRASTATS = "tegrastats"
    RAPL = "rapl"
    RPI_PMIC = "rpi-pmic"
    NVML = "nvml"


@dataclass(frozen=True)
class PowerReading:
    """One sample: ``t_ns`` from time.perf_counter_ns(); power in mW or a monotonic energy in mJ."""

    t_ns: int
    power_mw: float | None = None
    energy_mj: float | None = None
    rails_mw: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Unavailable:
    """Why a source cannot be read here, and what would make it readable."""

    source: str
    reason: str
    fix: str | None = None

    def one_line(self) -> str:
        return f"{self.source}: {self.reason}" + (f" ({self.fix})" if self.fix else "")


class PowerSource(Protocol):
    """A readable power source (what :func:`probe` returns when it works)."""

    @property
    def name(self) -> str: ...

    @property
    def scope(self) -> Scope: ...

    @property
    def kind(self) -> str: ...  # "power" or "energy"

    @property
    def detail(self) -> str: ...  # e.g. the rails summed, the RAPL zones

    def read(self) -> PowerReading: ...

    def close(self) -> None: ...


def run_command(argv: Sequence[str], *, timeout_s: float = 5.0) -> str:
    """The default command runner: stdout of ``argv`` (stderr folded in), bounded in time."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout_s, check=False)
    return (done.stdout or "") + (done.stderr or "")


def read_text(path: Path) -> str | None:
    """A sysfs file's stripped text, or None when it is absent or unreadable."""
    try:
        return path.read_text(errors="replace").strip()
    except OSError:
        return None


def read_int(path: Path) -> int | None:
    text = read_text(path)
    if text is None:
        return None
    try:
        return int(text.split()[0])
    except (ValueError, IndexError):
        return None
