"""NVIDIA discrete GPU board energy through NVML (``nvidia-ml-py``, imported lazily: extra ``nvml``).

``nvmlDeviceGetTotalEnergyConsumption`` gives millijoules since the driver
loaded (Volta and newer); it is a monotonic counter, so the window's energy
is the difference of two reads. NVML is not available on Jetson (use the
INA3221 sources there).
"""

from __future__ import annotations

import importlib
import logging
import time
from collections.abc import Callable
from typing import Any

from edgekit.telemetry.base import PowerReading, Scope, SourceName, Unavailable

log = logging.getLogger(__name__)


class NvmlSource:
    name = SourceName.NVML
    kind = "energy"
    scope = Scope.GPU_BOARD

    def __init__(self, nvml: Any, handle: Any, gpu_name: str, index: int, *,
                 clock: Callable[[], int] = time.perf_counter_ns) -> None:
        self._nvml, self._handle, self._clock = nvml, handle, clock
        self.detail = f"NVML total energy, GPU {index} ({gpu_name})"

    def read(self) -> PowerReading:
        t = self._clock()
        try:
            mj = float(self._nvml.nvmlDeviceGetTotalEnergyConsumption(self._handle))
        except Exception:  # noqa: BLE001 - an NVMLError mid-window is a missing sample, recorded as such
            return PowerReading(t_ns=t)
        return PowerReading(t_ns=t, energy_mj=mj)

    def close(self) -> None:
        try:
            self._nvml.nvmlShutdown()
        except Exception as e:  # noqa: BLE001 - shutting down a library that may already be gone
            log.debug("nvmlShutdown: %s", e)


def probe_nvml(*, index: int = 0, module: Any = None,
               clock: Callable[[], int] = time.perf_counter_ns) -> NvmlSource | Unavailable:
    """``module`` is injectable (tests pass a fake ``pynvml``)."""
    if module is None:
        try:
            module = importlib.import_module("pynvml")
        except ImportError:
            return Unavailable(SourceName.NVML, "nvidia-ml-py is not installed", fix="pip install 'edgekit[nvml]'")
    try:
        module.nvmlInit()
    except Exception as e:  # noqa: BLE001 - NVMLError_LibraryNotFound / DriverNotLoaded: no NVIDIA driver here
        return Unavailable(SourceName.NVML, f"NVML did not initialise ({type(e).__name__}: {e}): no NVIDIA "
                           "driver or discrete GPU here")
    try:
        handle = module.nvmlDeviceGetHandleByIndex(index)
        name = module.nvmlDeviceGetName(handle)
        module.nvmlDeviceGetTotalEnergyConsumption(handle)
    except Exception as e:  # noqa: BLE001 - NotSupported on pre-Volta GPUs
        try:
            module.nvmlShutdown()
        except Exception as shut:  # noqa: BLE001 - already failing; the first error is the one reported
            log.debug("nvmlShutdown: %s", shut)
        return Unavailable(SourceName.NVML, f"GPU {index} has no readable energy counter ({type(e).__name__}: {e})",
                           fix="NVML's energy counter needs a Volta or newer GPU")
    return NvmlSource(module, handle, name.decode() if isinstance(name, bytes) else str(name), index, clock=clock)
