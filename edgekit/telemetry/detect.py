"""Choose the power source: ``--power auto|off|SOURCE``.

``auto`` tries, in order, the Jetson INA3221 through hwmon, tegrastats, the
Raspberry Pi 5 PMIC, then the host's counters: NVML first when the bench runs
on an NVIDIA GPU (``prefer_gpu``), else RAPL first. Each source that is
absent or unreadable leaves its reason. A named source that cannot be read
is an error that says why and how to fix it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from pathlib import Path

from edgekit.core.errors import UsageError
from edgekit.telemetry.base import (
    CommandRunner,
    PowerSource,
    SourceName,
    Unavailable,
    run_command,
)


class PowerChoice(StrEnum):
    AUTO = "auto"
    OFF = "off"
    INA3221 = "ina3221"
    TEGRASTATS = "tegrastats"
    RAPL = "rapl"
    RPI_PMIC = "rpi-pmic"
    NVML = "nvml"


def _probers(root: Path, run: CommandRunner) -> dict[str, Callable[[], PowerSource | Unavailable]]:
    from edgekit.telemetry.hwmon import probe_hwmon
    from edgekit.telemetry.nvml import probe_nvml
    from edgekit.telemetry.rapl import probe_rapl
    from edgekit.telemetry.rpi import probe_pmic
    from edgekit.telemetry.tegrastats import probe_tegrastats

    return {SourceName.HWMON: lambda: probe_hwmon(root), SourceName.TEGRASTATS: probe_tegrastats,
            SourceName.RPI_PMIC: lambda: probe_pmic(run), SourceName.RAPL: lambda: probe_rapl(root),
            SourceName.NVML: probe_nvml}


def open_source(choice: str, *, root: Path = Path("/"), run: CommandRunner = run_command, prefer_gpu: bool = False,
                probers: dict[str, Callable[[], PowerSource | Unavailable]] | None = None,
                ) -> tuple[PowerSource | None, list[Unavailable]]:
    """(the opened source or None, the reasons of the sources that could not be used)."""
    try:
        c = PowerChoice(str(choice).strip().lower())
    except ValueError:
        raise UsageError(f"unknown power source {choice!r}",
                         hint=f"choose one of {', '.join(p.value for p in PowerChoice)}") from None
    if c == PowerChoice.OFF:
        return None, [Unavailable("power", "not measured (--power off)")]
    table = probers if probers is not None else _probers(Path(root), run)
    if c != PowerChoice.AUTO:
        got = table[c.value]()
        if isinstance(got, Unavailable):
            raise UsageError(f"--power {c.value}: {got.reason}", hint=got.fix)
        return got, []
    host = [SourceName.NVML, SourceName.RAPL] if prefer_gpu else [SourceName.RAPL, SourceName.NVML]
    reasons: list[Unavailable] = []
    for name in (SourceName.HWMON, SourceName.TEGRASTATS, SourceName.RPI_PMIC, *host):
        got = table[name]()
        if isinstance(got, Unavailable):
            reasons.append(got)
        else:
            return got, reasons
    return None, reasons
