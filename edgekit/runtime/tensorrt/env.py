"""What TensorRT runs on here: the ``tensorrt`` import (with its version gate), the CUDA runtime it uses,
one TensorRT logger per process, and the device fields of an :class:`~.engine_key.EngineKey`.

Supported: TensorRT 8.6 (JetPack 6.0), 10.x (JetPack 6.1+, x86/SBSA wheels) and 11.x. TensorRT 8.5 and older
are refused with the reason: their builder lacks the options edgekit sets, and the JetPack that ships them
(JetPack 5, L4T 35) ships Python 3.8, below edgekit's minimum (3.10).
"""

from __future__ import annotations

import importlib
import importlib.util
import logging
import re
from typing import Any

from edgekit.core.errors import DeviceError, MissingDependencyError, UsageError
from edgekit.runtime.tensorrt import cuda as _cuda

__all__ = ["device_environment", "gpu_unavailable_reason", "import_tensorrt", "jetson_identity",
           "tensorrt_logger", "tensorrt_version"]

log = logging.getLogger(__name__)

MIN_TENSORRT = (8, 6)
JETSON_NOTE = (
    "TensorRT engines; on a Jetson TensorRT ships with JetPack (python3-libnvinfer): "
    "create the venv with --system-site-packages"
)
JETSON_INSTALL = (
    "on a Jetson TensorRT ships with JetPack, never from pip: sudo apt install python3-libnvinfer "
    "(part of nvidia-jetpack), then python3 -m venv --system-site-packages .venv && .venv/bin/pip install edgekit"
)


def _import_tensorrt_module() -> Any:
    if importlib.util.find_spec("tensorrt") is None:
        return None
    return importlib.import_module("tensorrt")


def tensorrt_version(trt: Any) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(trt.__version__))[:3])


def import_tensorrt() -> Any:
    """``import tensorrt`` (8.6 or newer), or an error naming how to install it on this platform."""
    trt = _import_tensorrt_module()
    if trt is None:
        if _cuda.on_jetson():
            raise MissingDependencyError("tensorrt", "tensorrt", purpose="TensorRT engines", hint=JETSON_INSTALL)
        raise MissingDependencyError("tensorrt", "tensorrt", purpose=JETSON_NOTE)
    if tensorrt_version(trt)[:2] < MIN_TENSORRT:
        raise UsageError(
            f"TensorRT {trt.__version__} is not supported: edgekit needs TensorRT 8.6 or newer (8.5's builder has "
            "no optimization level, version or hardware compatibility)",
            hint="JetPack 6.0 ships TensorRT 8.6, JetPack 6.1+ TensorRT 10.3; JetPack 5 (TensorRT 8.5) ships "
                 "Python 3.8, below edgekit's 3.10: flash JetPack 6, or measure that device with trtexec",
        )
    return trt


def make_logger(trt: Any) -> Any:
    """A TensorRT logger that forwards to logging and keeps the errors for our messages."""

    class Logger(trt.ILogger):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            trt.ILogger.__init__(self)
            self.errors: list[str] = []
            self.trt = trt

        def log(self, severity: Any, msg: str) -> None:
            if severity in (trt.ILogger.INTERNAL_ERROR, trt.ILogger.ERROR):
                self.errors.append(msg)
                log.error("TensorRT: %s", msg)
            elif severity == trt.ILogger.WARNING:
                log.warning("TensorRT: %s", msg)
            else:
                log.debug("TensorRT: %s", msg)

    return Logger()


_LOGGER: Any = None


def tensorrt_logger(trt: Any) -> Any:
    """The process's one TensorRT logger (TensorRT keeps the first one while any builder/runtime lives, so a
    second logger would never hear the errors), its error list cleared for the operation about to start."""
    global _LOGGER
    if _LOGGER is None or _LOGGER.trt is not trt:
        _LOGGER = make_logger(trt)
    _LOGGER.errors.clear()
    return _LOGGER


def jetson_identity() -> dict[str, Any]:
    """L4T, JetPack, board and module P-number from :mod:`edgekit.core.host` (all None off a Jetson)."""
    from edgekit.core.host import read_host_facts

    f = read_host_facts()
    if not f.is_jetson:
        return {"l4t_release": None, "jetpack_version": None, "jetson_model": None, "jetson_module": None}
    return {"l4t_release": f.l4t, "jetpack_version": f.jetpack, "jetson_model": f.board,
            "jetson_module": f.jetson_module}


def _ver(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def device_environment(trt: Any, *, device: int = 0, cuda: Any = None) -> dict[str, Any]:
    """The environment fields of an EngineKey, read on this machine (the CUDA is the runtime TensorRT uses)."""
    rt = cuda or _cuda.load_cuda(trt)
    env: dict[str, Any] = {
        "tensorrt_version": str(trt.__version__),
        "cuda_version": _ver(rt.runtime_version()),
        "cuda_driver": _ver(rt.driver_version()),
        "gpu_name": rt.device_name(device),
        "compute_capability": f"{rt.attribute('cc_major', device)}.{rt.attribute('cc_minor', device)}",
        "sm_count": rt.attribute("sm_count", device),
    }
    env.update(jetson_identity())
    return env


def gpu_unavailable_reason() -> str | None:
    """Why TensorRT cannot run here, or None when it can."""
    try:
        trt = import_tensorrt()
    except MissingDependencyError as e:
        return "the tensorrt package cannot be imported" if e.module == "tensorrt" else str(e)
    except UsageError as e:
        return str(e)
    try:
        rt = _cuda.load_cuda(trt)
        if rt.device_count() < 1:
            return "no CUDA device"
    except (DeviceError, MissingDependencyError) as e:
        return str(e)
    return None
