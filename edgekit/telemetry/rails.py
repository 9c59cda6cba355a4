"""Which Jetson rail is the total, and what scope that total has (shared by hwmon and tegrastats).

Rules (../shared reference, device facts): ``VDD_IN`` (Orin Nano/NX, Xavier NX)
or ``POM_5V_IN`` (Nano, JetPack 4) is the module input; AGX Orin has none, so
the total is the sum of the module rails, labelled as such, leaving out the
carrier's ``VIN_SYS_5V0`` (not the module's input) and ``NC`` (not connected).
"""

from __future__ import annotations

from edgekit.telemetry.base import Scope

INPUT_RAILS = ("VDD_IN", "POM_5V_IN")
#: rails that are not part of the module: the carrier board's 5 V input, unconnected channels
NOT_MODULE = ("VIN_SYS_5V0", "NC")


def is_module_rail(name: str) -> bool:
    up = name.upper()
    return up not in NOT_MODULE and not up.startswith("VIN_SYS") and "SUM OF SHUNT" not in up


def total_of(rails_mw: dict[str, float]) -> tuple[float | None, Scope | None, str]:
    """(total mW, scope, how it was formed) of one set of rail readings; (None, None, why) when empty."""
    for name in INPUT_RAILS:
        if name in rails_mw:
            return rails_mw[name], Scope.MODULE_INPUT, name
    module = {k: v for k, v in rails_mw.items() if is_module_rail(k)}
    if not module:
        return None, None, "no module rail in the reading"
    return sum(module.values()), Scope.MODULE_RAILS, "sum of module rails " + "+".join(sorted(module))
