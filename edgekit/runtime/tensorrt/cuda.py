"""The CUDA runtime TensorRT itself uses, called through ctypes: no cuda-python.

Why not cuda-python: ``cuda.bindings.runtime`` statically links the CUDA runtime of the toolkit it was
built for, so its version is whatever pip picked (13.x needs an R580+ driver: every call fails with
``cudaErrorInsufficientDriver`` on JetPack 6 and on x86 drivers before R580), and its
``cudaRuntimeGetVersion`` reports that build, not the CUDA TensorRT runs on (audit #1, #2). The runner needs
about fifteen runtime calls; making them on the very ``libcudart.so.<major>`` that TensorRT uses keeps one
runtime in the process and makes the recorded CUDA version the real one.

Which libcudart: one already mapped into this process (loaded with TensorRT), else the one of TensorRT's CUDA
major (the ``tensorrt-cuXX`` wheel, or ``/usr/local/cuda`` on a Jetson / a deb install) from the pip
``nvidia-cuda-runtime`` wheels, ``/usr/local/cuda`` or the loader's path. :meth:`CudaRuntime.preflight`
then checks the driver against it and raises one :class:`DeviceError` that names the fix.
"""

from __future__ import annotations

import ctypes
import importlib.metadata
import json
import re
import sys
from pathlib import Path
from typing import Any

from edgekit.core.errors import DeviceError, MissingDependencyError

__all__ = ["CudaRuntime", "D2H", "H2D", "load_cuda", "on_jetson", "open_libcudart", "open_path"]

H2D, D2H = 1, 2  # cudaMemcpyKind
_ATTR = {"cc_major": 75, "cc_minor": 76, "sm_count": 16}  # cudaDeviceAttr
_NO_DRIVER = ("no NVIDIA driver on this machine (cudaDriverGetVersion gives 0): TensorRT needs an NVIDIA GPU "
              "with its driver")


def on_jetson() -> bool:
    return Path("/etc/nv_tegra_release").is_file()


def _ver(v: int) -> str:
    return f"{v // 1000}.{(v % 1000) // 10}"


def _mapped_libcudart() -> str | None:
    try:
        maps = Path("/proc/self/maps").read_text()
    except OSError:
        return None
    m = re.search(r"(/\S*/libcudart\.so\.\d+[\d.]*)$", maps, re.MULTILINE)
    return m.group(1) if m else None


def tensorrt_cuda_major() -> int | None:
    """The CUDA major TensorRT was built for: its ``tensorrt-cuXX`` wheel, else the system toolkit."""
    for dist in importlib.metadata.distributions():
        m = re.fullmatch(r"tensorrt[-_]cu(\d+)(?:[-_](?:libs|bindings))?", (dist.metadata["Name"] or "").lower())
        if m:
            return int(m.group(1))
    try:
        text = Path("/usr/local/cuda/version.json").read_text()
        return int(json.loads(text)["cuda"]["version"].split(".")[0])
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _candidates(major: int | None) -> list[str]:
    mapped = _mapped_libcudart()
    if mapped:
        return [mapped]
    majors = [major] if major else [13, 12, 11]
    out: list[str] = []
    for mj in majors:
        for base in sys.path:
            for sub in ("nvidia/cuda_runtime/lib", f"nvidia/cu{mj}/lib"):
                p = Path(base or ".") / sub / f"libcudart.so.{mj}"
                if p.is_file():
                    out.append(str(p))
        out += [str(p) for p in sorted(Path("/usr/local/cuda").glob(f"targets/*/lib/libcudart.so.{mj}"))]
        out += [f"/usr/local/cuda/lib64/libcudart.so.{mj}", f"libcudart.so.{mj}"]
    return out


def open_path(path: str) -> Any:
    return ctypes.CDLL(path)


def open_libcudart(trt: Any = None) -> Any:
    """The libcudart TensorRT uses (a ``ctypes.CDLL``); MissingDependencyError naming the package otherwise."""
    major = tensorrt_cuda_major()
    tried = _candidates(major)
    for path in tried:
        try:
            lib = open_path(path)
        except OSError:
            continue
        lib._edgekit_path = path
        return lib
    mj = major or 12
    if on_jetson():
        hint = "libcudart ships with JetPack: sudo apt install cuda-runtime-" + f"{mj}-x (or nvidia-jetpack)"
    else:
        hint = f"pip install 'nvidia-cuda-runtime-cu{mj}' (the CUDA {mj} runtime for TensorRT's cu{mj} wheel)"
    err = MissingDependencyError("libcudart", "tensorrt", purpose=f"the CUDA {mj} runtime TensorRT uses; "
                                 f"looked for libcudart.so.{mj}", hint=hint)
    raise err


class CudaRuntime:
    """Checked calls into one libcudart; every failure is a :class:`DeviceError` with the CUDA error name."""

    def __init__(self, lib: Any, *, path: str | None = None) -> None:
        self.lib = lib
        self.path = path or getattr(lib, "_edgekit_path", None) or "libcudart"
        self.lib.cudaGetErrorName.restype = ctypes.c_char_p

    # -- plumbing --------------------------------------------------------------------------------------
    def _check(self, fn: str, err: int) -> None:
        if err:
            name = self.lib.cudaGetErrorName(int(err))
            name = name.decode() if isinstance(name, bytes) else str(name)
            raise DeviceError(f"CUDA {fn} failed: {name} ({int(err)})", hint=self._hint(int(err)))

    def _hint(self, err: int) -> str | None:
        if err == 35:
            return self.driver_hint()
        if err == 2:
            return "the GPU is out of memory: close other GPU programs or use a smaller batch / workspace"
        return None

    def _out(self, fn: str, ctype: Any, *args: Any) -> Any:
        out = ctype()
        self._check(fn, getattr(self.lib, fn)(ctypes.byref(out), *args))
        return out.value

    def call(self, fn: str, *args: Any) -> None:
        self._check(fn, getattr(self.lib, fn)(*args))

    # -- versions and the driver check -----------------------------------------------------------------
    def driver_version(self) -> int:
        """The CUDA version the driver supports (``12060``), 0 without a driver."""
        return int(self._out("cudaDriverGetVersion", ctypes.c_int))

    def runtime_version(self) -> int:
        """The version of this libcudart (the CUDA TensorRT runs on)."""
        return int(self._out("cudaRuntimeGetVersion", ctypes.c_int))

    def driver_hint(self) -> str:
        rt = self.runtime_version()
        mj = rt // 1000
        if on_jetson():
            return (f"on a Jetson use the TensorRT and CUDA of your JetPack, or install cuda-compat-{mj}-x for "
                    f"CUDA {_ver(rt)}")
        min_driver = {13: 580, 12: 525, 11: 450}.get(mj, "a newer")
        older = mj - 1
        return (f"install an NVIDIA driver >= {min_driver}, or the TensorRT built for your driver's CUDA: "
                f"pip install 'tensorrt-cu{older}' 'nvidia-cuda-runtime-cu{older}'")

    def preflight(self) -> None:
        """DeviceError naming the fix when the driver is absent or older than this runtime's CUDA major."""
        drv, rt = self.driver_version(), self.runtime_version()
        if drv == 0:
            raise DeviceError(f"{_NO_DRIVER}; found {Path(self.path).name} (CUDA {_ver(rt)})",
                              hint="run on a machine with an NVIDIA GPU, or use the onnxruntime / openvino runtimes here")
        if drv // 1000 < rt // 1000:
            raise DeviceError(f"the NVIDIA driver supports CUDA {_ver(drv)}, but TensorRT's CUDA runtime "
                              f"({Path(self.path).name}) is CUDA {_ver(rt)}", hint=self.driver_hint())

    # -- device --------------------------------------------------------------------------------------------
    def device_count(self) -> int:
        return int(self._out("cudaGetDeviceCount", ctypes.c_int))

    def set_device(self, device: int) -> None:
        self.call("cudaSetDevice", ctypes.c_int(device))

    def attribute(self, name: str, device: int) -> int:
        return int(self._out("cudaDeviceGetAttribute", ctypes.c_int, ctypes.c_int(_ATTR[name]), ctypes.c_int(device)))

    def device_name(self, device: int) -> str:
        buf = ctypes.create_string_buffer(8192)  # cudaDeviceProp starts with char name[256]; the rest is unread
        self.call("cudaGetDeviceProperties", ctypes.byref(buf), ctypes.c_int(device))
        return buf.value.decode("utf-8", "replace").strip()

    # -- memory, streams, events -----------------------------------------------------------------------
    def malloc(self, nbytes: int) -> int:
        return int(self._out("cudaMalloc", ctypes.c_void_p, ctypes.c_size_t(nbytes)))

    def malloc_host(self, nbytes: int) -> int:
        return int(self._out("cudaMallocHost", ctypes.c_void_p, ctypes.c_size_t(nbytes)))

    def free(self, ptr: int) -> None:
        self.call("cudaFree", ctypes.c_void_p(ptr))

    def free_host(self, ptr: int) -> None:
        self.call("cudaFreeHost", ctypes.c_void_p(ptr))

    def memcpy_async(self, dst: int, src: int, nbytes: int, kind: int, stream: int) -> None:
        self.call("cudaMemcpyAsync", ctypes.c_void_p(dst), ctypes.c_void_p(src), ctypes.c_size_t(nbytes),
                  ctypes.c_int(kind), ctypes.c_void_p(stream))

    def stream_create(self) -> int:
        return int(self._out("cudaStreamCreate", ctypes.c_void_p) or 0)

    def stream_destroy(self, stream: int) -> None:
        self.call("cudaStreamDestroy", ctypes.c_void_p(stream))

    def synchronize(self, stream: int) -> None:
        self.call("cudaStreamSynchronize", ctypes.c_void_p(stream))

    def event_create(self) -> int:
        return int(self._out("cudaEventCreate", ctypes.c_void_p) or 0)

    def event_destroy(self, event: int) -> None:
        self.call("cudaEventDestroy", ctypes.c_void_p(event))

    def event_record(self, event: int, stream: int) -> None:
        self.call("cudaEventRecord", ctypes.c_void_p(event), ctypes.c_void_p(stream))

    def elapsed_ms(self, start: int, end: int) -> float:
        return float(self._out("cudaEventElapsedTime", ctypes.c_float, ctypes.c_void_p(start), ctypes.c_void_p(end)))


def load_cuda(trt: Any = None) -> CudaRuntime:
    """The CUDA runtime TensorRT uses, its driver checked (DeviceError naming the fix otherwise)."""
    rt = CudaRuntime(open_libcudart(trt))
    rt.preflight()
    return rt
