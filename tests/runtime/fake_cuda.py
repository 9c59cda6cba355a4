"""The fake CUDA side for the strict fake TensorRT (fake_tensorrt.py): a device, its driver, and the two ways
edgekit code has reached CUDA: a ``libcudart.so`` called through ctypes (``byref`` out-parameters, C error
codes) and cuda-python's ``cuda.bindings.runtime`` (``(err, value)`` tuples, its own statically linked cudart).

With no driver, or a driver older than the runtime's CUDA major, every call but the two version queries returns
``cudaErrorInsufficientDriver`` (35), as the real libcudart 13 does on this CPU-only machine. Copies and kernels
advance a per-stream clock, so CUDA events measure H2D, compute and D2H separately.
"""

from __future__ import annotations

import ctypes
from types import SimpleNamespace

H2D_MS, COMPUTE_MS, D2H_MS = 0.125, 0.25, 0.0625  # per copy / per enqueue, on the fake stream clock
CUDA_SUCCESS, CUDA_INSUFFICIENT_DRIVER, CUDA_NO_DEVICE, CUDA_OOM = 0, 35, 100, 2
ERROR_NAMES = {0: b"cudaSuccess", 2: b"cudaErrorMemoryAllocation", 35: b"cudaErrorInsufficientDriver",
               100: b"cudaErrorNoDevice", 101: b"cudaErrorInvalidDevice"}


# -- the device ---------------------------------------------------------------------------------------------------
class FakeGPU:
    """One machine's CUDA device(s) and driver. ``driver`` is the CUDA version the driver supports (0: no driver)."""

    def __init__(self, *, name: str = "Orin", cc: tuple[int, int] = (8, 7), sms: int = 8, driver: int = 12060,
                 devices: int = 1, dla_cores: int = 0, mem_limit: int | None = None) -> None:
        self.name, self.cc, self.sms, self.driver = name, cc, sms, driver
        self.devices, self.dla_cores, self.mem_limit = devices, dla_cores, mem_limit
        self.current = 0
        self.clock: dict[int, float] = {}  # stream -> ms
        self.events: dict[int, float] = {}
        self.buffers: dict[int, object] = {}
        self.freed: list[int] = []
        self.copies: list[str] = []
        self.set_device_calls: list[int] = []

    def advance(self, stream: int, ms: float) -> None:
        self.clock[stream] = self.clock.get(stream, 0.0) + ms


def _v(x):
    if hasattr(x, "_obj"):  # ctypes.byref(...)
        return x._obj
    return getattr(x, "value", x)


class _Sym:
    """One exported C function: callable, with the ``argtypes`` / ``restype`` ctypes lets you set."""

    def __init__(self, fn) -> None:
        self.fn, self.argtypes, self.restype = fn, None, ctypes.c_int

    def __call__(self, *args):
        return self.fn(*args)


LIBCUDART_SYMBOLS = frozenset({  # nm -D libcudart.so.13 (nvidia-cuda-runtime 13.0.96) and libcudart.so.12
    "cudaDriverGetVersion", "cudaRuntimeGetVersion", "cudaGetDeviceCount", "cudaSetDevice", "cudaGetDevice",
    "cudaGetDeviceProperties", "cudaDeviceGetAttribute", "cudaMalloc", "cudaMallocHost", "cudaFree",
    "cudaFreeHost", "cudaMemcpyAsync", "cudaStreamCreate", "cudaStreamDestroy", "cudaStreamSynchronize",
    "cudaEventCreate", "cudaEventDestroy", "cudaEventRecord", "cudaEventElapsedTime", "cudaEventSynchronize",
    "cudaGetErrorName", "cudaGetErrorString", "cudaMemGetInfo",
})


class FakeLibcudart:
    """``ctypes.CDLL("libcudart.so.12")`` as seen through ctypes: C error codes, out-parameters by reference."""

    def __init__(self, gpu: FakeGPU, runtime_version: int = 12060, path: str = "/usr/local/cuda/lib64/libcudart.so.12"):
        self.gpu, self.runtime_version, self._name = gpu, runtime_version, path

    def __getattr__(self, name: str):
        if name not in LIBCUDART_SYMBOLS:
            raise AttributeError(f"{self._name}: undefined symbol: {name}")
        return _Sym(getattr(self, "_" + name))

    def _gate(self) -> int:
        g = self.gpu
        if g.driver == 0 or g.driver // 1000 < self.runtime_version // 1000:
            return CUDA_INSUFFICIENT_DRIVER
        return CUDA_NO_DEVICE if g.devices < 1 else CUDA_SUCCESS

    def _cudaDriverGetVersion(self, out):  # noqa: N802
        _v(out).value = self.gpu.driver
        return 0

    def _cudaRuntimeGetVersion(self, out):  # noqa: N802
        _v(out).value = self.runtime_version
        return 0

    def _cudaGetDeviceCount(self, out):  # noqa: N802
        err = self._gate()
        _v(out).value = self.gpu.devices if err == 0 else 0
        return err

    def _cudaSetDevice(self, d):  # noqa: N802
        err = self._gate()
        if err:
            return err
        if not 0 <= _v(d) < self.gpu.devices:
            return 101
        self.gpu.current = _v(d)
        self.gpu.set_device_calls.append(_v(d))
        return 0

    def _cudaGetDevice(self, out):  # noqa: N802
        _v(out).value = self.gpu.current
        return self._gate()

    def _cudaGetDeviceProperties(self, buf, d):  # noqa: N802
        err = self._gate()
        if err:
            return err
        name = f"{self.gpu.name} #{_v(d)}" if _v(d) else self.gpu.name
        ctypes.memmove(ctypes.addressof(_v(buf)), name.encode() + b"\x00", len(name) + 1)
        return 0

    def _cudaDeviceGetAttribute(self, out, attr, d):  # noqa: N802
        err = self._gate()
        if err:
            return err
        values = {75: self.gpu.cc[0], 76: self.gpu.cc[1], 16: self.gpu.sms + _v(d)}  # device 1 differs
        if _v(attr) not in values:
            return 1
        _v(out).value = values[_v(attr)]
        return 0

    def _alloc(self, out, n) -> int:
        err = self._gate()
        if err:
            return err
        n = _v(n)
        if self.gpu.mem_limit is not None and n > self.gpu.mem_limit:
            return CUDA_OOM
        buf = (ctypes.c_byte * n)()
        self.gpu.buffers[ctypes.addressof(buf)] = buf
        _v(out).value = ctypes.addressof(buf)
        return 0

    def _cudaMalloc(self, out, n):  # noqa: N802
        return self._alloc(out, n)

    def _cudaMallocHost(self, out, n):  # noqa: N802
        return self._alloc(out, n)

    def _cudaFree(self, p):  # noqa: N802
        self.gpu.freed.append(_v(p))
        return 0

    _cudaFreeHost = _cudaFree

    def _cudaMemcpyAsync(self, dst, src, n, kind, stream):  # noqa: N802
        n, kind = _v(n), _v(kind)
        ctypes.memmove(_v(dst), _v(src), n)
        self.gpu.copies.append({1: "H2D", 2: "D2H"}.get(kind, str(kind)))
        self.gpu.advance(_v(stream) or 0, H2D_MS if kind == 1 else D2H_MS)
        return 0

    def _cudaStreamCreate(self, out):  # noqa: N802
        err = self._gate()
        if not err:
            _v(out).value = 7
        return err

    def _cudaStreamDestroy(self, s):  # noqa: N802
        return 0

    def _cudaStreamSynchronize(self, s):  # noqa: N802
        return 0

    def _cudaEventSynchronize(self, e):  # noqa: N802
        return 0

    def _cudaEventCreate(self, out):  # noqa: N802
        _v(out).value = 100 + len(self.gpu.events)
        self.gpu.events[_v(out).value] = 0.0
        return self._gate()

    def _cudaEventDestroy(self, e):  # noqa: N802
        return 0

    def _cudaEventRecord(self, e, s):  # noqa: N802
        self.gpu.events[_v(e)] = self.gpu.clock.get(_v(s) or 0, 0.0)
        return 0

    def _cudaEventElapsedTime(self, out, a, b):  # noqa: N802
        _v(out).value = self.gpu.events[_v(b)] - self.gpu.events[_v(a)]
        return 0

    def _cudaGetErrorName(self, code):  # noqa: N802
        return ERROR_NAMES.get(_v(code), b"cudaErrorUnknown")

    def _cudaGetErrorString(self, code):  # noqa: N802
        return ERROR_NAMES.get(_v(code), b"unknown error")

    def _cudaMemGetInfo(self, free, total):  # noqa: N802
        _v(free).value, _v(total).value = 1 << 30, 8 << 30
        return self._gate()


class FakeCudaPython:
    """``cuda.bindings.runtime`` 12.9/13.x: its own statically linked cudart of ``build_version`` (not the device's)."""

    class cudaMemcpyKind:  # noqa: N801
        cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost = 0, 1, 2

    def __init__(self, gpu: FakeGPU, build_version: int = 12090) -> None:
        self._lib = FakeLibcudart(gpu, build_version)

    def __getattr__(self, name: str):
        lib = self._lib

        def call(*args):
            outs = {"cudaGetDeviceCount": ctypes.c_int, "cudaRuntimeGetVersion": ctypes.c_int,
                    "cudaDriverGetVersion": ctypes.c_int, "cudaMalloc": ctypes.c_void_p,
                    "cudaMallocHost": ctypes.c_void_p, "cudaStreamCreate": ctypes.c_void_p,
                    "cudaEventCreate": ctypes.c_void_p, "cudaEventElapsedTime": ctypes.c_float}
            if name == "cudaGetDeviceProperties":
                buf = ctypes.create_string_buffer(256)
                err = getattr(lib, name)(ctypes.byref(buf), args[0])
                if err:
                    return (err, None)
                return (0, SimpleNamespace(name=buf.value, major=lib.gpu.cc[0], minor=lib.gpu.cc[1],
                                           multiProcessorCount=lib.gpu.sms))
            if name in outs:
                o = outs[name]()
                err = getattr(lib, name)(ctypes.byref(o), *args)
                return (err, o.value if err == 0 else None)
            return (getattr(lib, name)(*args),)

        return call
