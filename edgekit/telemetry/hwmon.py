"""Jetson INA3221 power monitor read directly through hwmon sysfs (finer than tegrastats).

``<root>/sys/bus/i2c/devices/*/hwmon/hwmon*/`` with ``name`` = ``ina3221``;
per channel ``in<k>_label`` (the rail; "sum of shunt voltages" is skipped),
``in<k>_input`` (mV) and ``curr<k>_input`` (mA): P = mV x mA / 1000. Older
L4T kernels expose the same chip under ``iio:device*`` with
``rail_name_<k>`` and ``in_power<k>_input`` (mW); both layouts are read.
"""

from __future__ import annotations

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
from edgekit.telemetry.rails import total_of

I2C = Path("sys/bus/i2c/devices")


@dataclass(frozen=True)
class Channel:
    rail: str
    volt_path: Path | None  # mV
    curr_path: Path | None  # mA
    power_path: Path | None = None  # mW (iio layout)

    def read_mw(self) -> float | None:
        if self.power_path is not None:
            p = read_int(self.power_path)
            return None if p is None else float(p)
        mv = read_int(self.volt_path) if self.volt_path else None
        ma = read_int(self.curr_path) if self.curr_path else None
        return None if mv is None or ma is None else mv * ma / 1000.0


def find_channels(root: Path) -> list[Channel]:
    """Every labelled INA3221 channel under ``root`` (hwmon and iio layouts)."""
    out: list[Channel] = []
    base = root / I2C
    for dev in sorted(base.glob("*")) if base.is_dir() else []:
        for hw in sorted(dev.glob("hwmon/hwmon*")):
            if (read_text(hw / "name") or "").lower() != "ina3221":
                continue
            for label in sorted(hw.glob("in*_label")):
                k = label.name[2:-len("_label")]
                rail = read_text(label)
                if not rail or "sum of shunt" in rail.lower():
                    continue
                out.append(Channel(rail.strip(), hw / f"in{k}_input", hw / f"curr{k}_input"))
        for iio in sorted(dev.glob("iio:device*")):
            for label in sorted(iio.glob("rail_name_*")):
                k = label.name.rsplit("_", 1)[1]
                rail = read_text(label)
                if rail:
                    out.append(Channel(rail.strip(), None, None, iio / f"in_power{k}_input"))
    return out


class HwmonSource:
    """Total power of a Jetson module from its INA3221 channels (rules: :mod:`edgekit.telemetry.rails`)."""

    name = SourceName.HWMON
    kind = "power"

    def __init__(self, channels: list[Channel], *, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self.channels = [c for c in channels if c.rail.upper() != "NC"]
        self._clock = clock
        first = {c.rail: 1.0 for c in self.channels}
        _, scope, rule = total_of(first)
        self.scope: Scope = scope or Scope.MODULE_RAILS
        self.detail = f"INA3221 hwmon, {rule}"

    def read(self) -> PowerReading:
        t = self._clock()
        rails = {c.rail: mw for c in self.channels if (mw := c.read_mw()) is not None}
        total, _, _ = total_of(rails)
        return PowerReading(t_ns=t, power_mw=total, rails_mw=rails)

    def close(self) -> None:
        pass


def probe_hwmon(root: Path = Path("/"), *, clock: Callable[[], int] = time.perf_counter_ns) -> HwmonSource | Unavailable:
    chans = find_channels(root)
    if not chans:
        return Unavailable(SourceName.HWMON, f"no INA3221 power monitor under {root / I2C} (not a Jetson, or the "
                           "ina3221 driver is not loaded)")
    src = HwmonSource(chans, clock=clock)
    r = src.read()
    if r.power_mw is None:
        return Unavailable(SourceName.HWMON, f"INA3221 channels found ({', '.join(c.rail for c in chans)}) but "
                           "not readable", fix="run as root or grant read access to the hwmon files")
    return src
