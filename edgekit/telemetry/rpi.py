"""Raspberry Pi 5: PMIC power (``vcgencmd pmic_read_adc``) and throttle bits (``vcgencmd get_throttled``).

``pmic_read_adc`` prints ``NAME_A current(i)=xA`` and ``NAME_V volt(j)=yV``
lines: current and voltage are paired by rail name (``X_A`` with ``X_V``),
never by index; ``EXT5V_V`` has no current and ``BATT_V`` may be ``nanV``
(both give no power). The sum over rails is SoC rail power: it leaves out
conversion losses and USB, and is labelled so. A Pi without the PMIC answers
``error=1 error_msg="Command not registered"``.
"""

from __future__ import annotations

import math
import re
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass

from edgekit.telemetry.base import (
    CommandRunner,
    PowerReading,
    Scope,
    SourceName,
    Unavailable,
    run_command,
)

_ADC = re.compile(r"^\s*(\S+)_([AV])\s+(?:current|volt)\(\d+\)=([-+\w.]+?)([AV])\s*$")
_THROTTLED = re.compile(r"throttled=(0x[0-9a-fA-F]+|\d+)")
#: get_throttled bits (now); the same + 16 are "has occurred since boot"
THROTTLE_BITS = {0: "under-voltage", 1: "ARM frequency capped", 2: "throttled", 3: "soft temperature limit"}


@dataclass(frozen=True)
class PmicReading:
    rails_mw: dict[str, float]
    unpaired: tuple[str, ...]  # rails with only a current or only a voltage (EXT5V, BATT)
    total_mw: float | None


def parse_pmic(text: str) -> PmicReading:
    """Pair ``X_A`` with ``X_V`` by name; P = V x A. Lines that do not parse are ignored."""
    amps: dict[str, float] = {}
    volts: dict[str, float] = {}
    for line in text.splitlines():
        m = _ADC.match(line)
        if not m:
            continue
        rail, kind, value, _unit = m.groups()
        try:
            v = float(value)
        except ValueError:
            continue
        if not math.isfinite(v):
            continue
        (amps if kind == "A" else volts)[rail] = v
    rails = {r: volts[r] * amps[r] * 1000.0 for r in amps if r in volts}
    unpaired = tuple(sorted(set(amps) ^ set(volts)))
    return PmicReading(rails, unpaired, sum(rails.values()) if rails else None)


def parse_throttled(text: str) -> int | None:
    m = _THROTTLED.search(text)
    return int(m.group(1), 0) if m else None


def throttle_flags(bits: int) -> tuple[list[str], list[str]]:
    """(conditions now, conditions that occurred since boot) named from ``get_throttled`` bits."""
    now = [n for b, n in THROTTLE_BITS.items() if bits & (1 << b)]
    ever = [n for b, n in THROTTLE_BITS.items() if bits & (1 << (b + 16))]
    return now, ever


def read_throttled(run: CommandRunner = run_command) -> int | None:
    try:
        return parse_throttled(run(["vcgencmd", "get_throttled"]))
    except (OSError, subprocess.SubprocessError):
        return None


class RpiPmicSource:
    name = SourceName.RPI_PMIC
    kind = "power"
    scope = Scope.SOC_RAILS

    def __init__(self, run: CommandRunner = run_command, *, clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self._run = run
        self._clock = clock
        self.detail = "vcgencmd pmic_read_adc, sum of PMIC rails (no conversion losses, no USB)"

    def read(self) -> PowerReading:
        t = self._clock()
        try:
            r = parse_pmic(self._run(["vcgencmd", "pmic_read_adc"]))
        except (OSError, subprocess.SubprocessError):
            return PowerReading(t_ns=t)
        # the command takes milliseconds: stamp the middle of the read
        return PowerReading(t_ns=(t + self._clock()) // 2, power_mw=r.total_mw, rails_mw=r.rails_mw)

    def close(self) -> None:
        pass


def probe_pmic(run: CommandRunner = run_command, *,
               clock: Callable[[], int] = time.perf_counter_ns) -> RpiPmicSource | Unavailable:
    try:
        out = run(["vcgencmd", "pmic_read_adc"])
    except FileNotFoundError:
        return Unavailable(SourceName.RPI_PMIC, "vcgencmd is not on PATH (not a Raspberry Pi)")
    except (OSError, subprocess.SubprocessError) as e:
        return Unavailable(SourceName.RPI_PMIC, f"vcgencmd pmic_read_adc failed: {e}")
    if "error=" in out and "Command not registered" in out:
        return Unavailable(SourceName.RPI_PMIC, "this Raspberry Pi has no PMIC ADC (pmic_read_adc is a "
                           "Raspberry Pi 5 command: 'Command not registered')")
    if parse_pmic(out).total_mw is None:
        first = out.strip().splitlines()[0][:120] if out.strip() else "nothing"
        return Unavailable(SourceName.RPI_PMIC, f"vcgencmd pmic_read_adc printed no current/voltage pair ({first!r})",
                           fix="add the user to the 'video' group (vcgencmd needs /dev/vcio)")
    return RpiPmicSource(run, clock=clock)
