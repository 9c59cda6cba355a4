"""A strict fake TensorRT, CUDA runtime (libcudart through ctypes) and cuda-python, for machines without a GPU.

Strict means it fails the way the real thing does:

* every fake object answers only the names the real module of that TensorRT version has
  (:mod:`trt_api_names`, read from the PyPI bindings 8.6.1 / 10.3.0 / 11.4.0): any other name, read or
  assigned, raises ``AttributeError`` as a pybind11 object does;
* TensorRT 8.x networks created without ``EXPLICIT_BATCH`` are implicit batch and the ONNX parser asserts;
* a version-compatible plan deserializes only with ``runtime.engine_host_code_allowed = True``;
* DLA: ``num_DLA_cores`` per device, ``config.can_run_on_DLA(layer)`` per layer kind, and a build with a
  non-DLA layer fails unless ``GPU_FALLBACK`` is set;
* the CUDA runtime is a fake ``libcudart.so`` called through ctypes (``byref`` out-parameters, C error codes):
  with no driver, or a driver older than the runtime's CUDA major, every call but the two version queries
  returns ``cudaErrorInsufficientDriver`` (35), as the real libcudart 13 does on this CPU-only machine;
* copies and kernels advance a per-stream clock, so CUDA events measure H2D, compute and D2H separately.

The tiny engine: ``image[-1,3,16,16] -> logits[-1,5]``, ``logits[b,k] = mean(image[b]) * (k+1)``.
"""

from __future__ import annotations

import ctypes
import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

try:  # loaded by path from tests/runtime/conftest.py and tests/test_build.py
    from trt_api_names import api
except ImportError:  # pragma: no cover - imported as a package module
    from .trt_api_names import api

TINY_CLASSES = 5
H2D_MS, COMPUTE_MS, D2H_MS = 0.125, 0.25, 0.0625  # per copy / per enqueue, on the fake stream clock
CUDA_SUCCESS, CUDA_INSUFFICIENT_DRIVER, CUDA_NO_DEVICE, CUDA_OOM = 0, 35, 100, 2
ERROR_NAMES = {0: b"cudaSuccess", 2: b"cudaErrorMemoryAllocation", 35: b"cudaErrorInsufficientDriver",
               100: b"cudaErrorNoDevice", 101: b"cudaErrorInvalidDevice"}


# -- strictness -------------------------------------------------------------------------------------------------
class Strict:
    """Attributes outside ``_names`` (public ones) raise AttributeError, read or written."""

    _kind = "object"

    def __init__(self, names: frozenset[str], version: str) -> None:
        object.__setattr__(self, "_names", names)
        object.__setattr__(self, "_version", version)

    def __getattribute__(self, name: str):
        if not name.startswith("_") and name not in object.__getattribute__(self, "_names"):
            kind, v = object.__getattribute__(self, "_kind"), object.__getattribute__(self, "_version")
            raise AttributeError(f"'tensorrt.{kind}' object has no attribute '{name}' (TensorRT {v})")
        return object.__getattribute__(self, name)

    def __setattr__(self, name: str, value) -> None:
        if not name.startswith("_") and name not in object.__getattribute__(self, "_names"):
            kind, v = object.__getattribute__(self, "_kind"), object.__getattribute__(self, "_version")
            raise AttributeError(f"'tensorrt.{kind}' object has no attribute '{name}' (TensorRT {v})")
        object.__setattr__(self, name, value)


class Member:
    def __init__(self, enum: str, name: str, value: int) -> None:
        self.enum, self.name, self.value = enum, name, value

    def __int__(self) -> int:
        return self.value

    def __eq__(self, other) -> bool:
        return isinstance(other, Member) and (self.enum, self.name) == (other.enum, other.name)

    def __hash__(self) -> int:
        return hash((self.enum, self.name))

    def __repr__(self) -> str:
        return f"{self.enum}.{self.name}"


class _EnumMeta(type):
    def __getattr__(cls, name: str):
        raise AttributeError(f"type object '{cls.__name__}' has no attribute '{name}' (TensorRT {cls._version})")


def _enum(name: str, members: list[str], version: str) -> type:
    ns = {m: Member(name, m, i) for i, m in enumerate(members)}
    ns["_version"] = version
    return _EnumMeta(name, (), ns)


class FakeILogger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self) -> None:
        pass


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


# -- TensorRT -------------------------------------------------------------------------------------------------------
LAYER_KINDS_ON_DLA = {"CONVOLUTION", "POOLING", "ACTIVATION", "SCALE"}  # the tiny graph's other kinds: not on DLA


class FakeTensorRT(Strict):
    """``tensorrt`` of ``version`` (8.5 / 8.6 / 10.x / 11.x API by its major.minor)."""

    _kind = "module"

    def __init__(self, version: str = "10.3.0", *, gpu: FakeGPU | None = None, fail_build: bool = False,
                 layers: tuple[str, ...] = ("CONVOLUTION", "ACTIVATION", "REDUCE", "SHUFFLE")) -> None:
        classes, enums = api(version)
        super().__init__(classes["module"], version)
        self._classes = classes
        self._gpu = gpu or FakeGPU()
        self._fail_build = fail_build
        self._layers = layers
        self._configs: list[FakeConfig] = []
        self._networks: list[FakeNetwork] = []
        self._runtimes: list[FakeRuntime] = []
        self._deserialized: list[bytes] = []
        self._loggers: list[object] = []
        self.__version__ = version
        for enum, members in enums.items():
            object.__setattr__(self, enum, _enum(enum, members, version))
        self.ILogger = FakeILogger
        self.IOutputAllocator = object

    def _major(self) -> int:
        return int(self._version.split(".")[0])

    def Builder(self, logger):  # noqa: N802 - TensorRT's name
        self._loggers.append(logger)
        return FakeBuilder(self, logger)

    def OnnxParser(self, network, logger):  # noqa: N802
        return FakeParser(self, network, logger)

    def Runtime(self, logger):  # noqa: N802
        self._loggers.append(logger)
        rt = FakeRuntime(self, logger)
        self._runtimes.append(rt)
        return rt


class FakeTimingCache(Strict):
    _kind = "ITimingCache"

    def __init__(self, trt: FakeTensorRT, data: bytes) -> None:
        super().__init__(trt._classes["ITimingCache"], trt._version)
        self._data = data

    def serialize(self) -> bytes:
        return self._data + b"+tuned"


class FakeLayer(Strict):
    _kind = "ILayer"

    def __init__(self, trt: FakeTensorRT, i: int, kind: str) -> None:
        super().__init__(trt._classes["ILayer"], trt._version)
        self.name, self.type = f"{kind.lower()}_{i}", Member("LayerType", kind, i)


class FakeNetwork(Strict):
    _kind = "INetworkDefinition"

    def __init__(self, trt: FakeTensorRT, flags: int) -> None:
        super().__init__(trt._classes["INetworkDefinition"], trt._version)
        self._trt, self._flags, self._parsed = trt, flags, None
        self._input_shape: list[int] = []
        self._layers: list[FakeLayer] = []

    def has_implicit_batch_dimension(self) -> bool:
        trt = self._trt
        if trt._major() >= 10:
            return False
        return not self._flags & (1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH))

    @property
    def num_layers(self) -> int:
        return len(self._layers)

    def get_layer(self, i: int) -> FakeLayer:
        return self._layers[i]

    num_inputs = 1
    num_outputs = 1


class FakeProfile(Strict):
    _kind = "IOptimizationProfile"

    def __init__(self, trt: FakeTensorRT) -> None:
        super().__init__(trt._classes["IOptimizationProfile"], trt._version)
        self._shapes: dict = {}

    def set_shape(self, name, lo, opt, hi) -> None:
        self._shapes[name] = (tuple(lo), tuple(opt), tuple(hi))


class FakeConfig(Strict):
    _kind = "IBuilderConfig"

    def __init__(self, trt: FakeTensorRT) -> None:
        super().__init__(trt._classes["IBuilderConfig"], trt._version)
        self._trt = trt
        self._flags = {"TF32"}  # on by default, as in TensorRT
        self._pool: dict = {}
        self._profiles: list[dict] = []
        self._timing_cache_in: bytes | None = None
        self._cache = None
        for name, value in (("builder_optimization_level", 3), ("default_device_type", trt.DeviceType.GPU),
                            ("DLA_core", -1), ("hardware_compatibility_level", None),
                            ("profiling_verbosity", trt.ProfilingVerbosity.LAYER_NAMES_ONLY)):
            if name in self._names:
                object.__setattr__(self, name, value)

    def set_flag(self, f: Member) -> None:
        self._flags.add(f.name)

    def clear_flag(self, f: Member) -> None:
        self._flags.discard(f.name)

    def get_flag(self, f: Member) -> bool:
        return f.name in self._flags

    def set_memory_pool_limit(self, pool: Member, size: int) -> None:
        self._pool[pool.name] = size

    def add_optimization_profile(self, p: FakeProfile) -> int:
        self._profiles.append(dict(p._shapes))
        return len(self._profiles) - 1

    def create_timing_cache(self, data: bytes) -> FakeTimingCache:
        self._timing_cache_in = bytes(data)
        return FakeTimingCache(self._trt, bytes(data))

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        self._cache = cache
        return not cache._data.startswith(b"other-device")

    def get_timing_cache(self) -> FakeTimingCache:
        return self._cache

    def can_run_on_DLA(self, layer: FakeLayer) -> bool:  # noqa: N802
        return layer.type.name in LAYER_KINDS_ON_DLA

    def get_device_type(self, layer: FakeLayer) -> Member:
        return self.default_device_type


class FakeBuilder(Strict):
    _kind = "Builder"

    def __init__(self, trt: FakeTensorRT, logger) -> None:
        super().__init__(trt._classes["Builder"], trt._version)
        self._trt, self._logger = trt, logger
        self.num_DLA_cores = trt._gpu.dla_cores
        trt._gpu.builder_device = trt._gpu.current

    def create_network(self, flags: int = 0) -> FakeNetwork:
        net = FakeNetwork(self._trt, int(flags))
        self._trt._networks.append(net)
        return net

    def create_builder_config(self) -> FakeConfig:
        cfg = FakeConfig(self._trt)
        self._trt._configs.append(cfg)
        return cfg

    def create_optimization_profile(self) -> FakeProfile:
        return FakeProfile(self._trt)

    def build_serialized_network(self, network: FakeNetwork, config: FakeConfig):
        trt = self._trt
        if trt._fail_build:
            self._logger.log(FakeILogger.ERROR, "fake: no implementation for node Conv_0")
            return None
        dla = config.default_device_type == trt.DeviceType.DLA
        on_gpu = [layer.name for layer in network._layers if not config.can_run_on_DLA(layer)] if dla else []
        if on_gpu and "GPU_FALLBACK" not in config._flags:
            self._logger.log(FakeILogger.ERROR, f"{on_gpu[0]} cannot run on DLA and GPU fallback is off")
            return None
        plan = {"profile": {k: list(map(list, v)) for k, v in (config._profiles[0] if config._profiles else {}).items()},
                "version_compatible": "VERSION_COMPATIBLE" in config._flags, "built_on": trt._gpu.current,
                "flags": sorted(config._flags), "input_shape": network._input_shape}
        return b"FAKEPLAN" + json.dumps(plan).encode()


class FakeParser(Strict):
    _kind = "OnnxParser"

    def __init__(self, trt: FakeTensorRT, network: FakeNetwork, logger) -> None:
        super().__init__(trt._classes["OnnxParser"], trt._version)
        self._trt, self._network, self._logger = trt, network, logger
        self._errors: list[str] = []

    @property
    def num_errors(self) -> int:
        return len(self._errors)

    def parse_from_file(self, path: str) -> bool:
        if self._network.has_implicit_batch_dimension():  # onnx-tensorrt ModelImporter.cpp, TensorRT 8.x parsers
            msg = ("Assertion failed: !_importer_ctx.network()->hasImplicitBatchDimension() && \"This version of the "
                   "ONNX parser only supports TensorRT INetworkDefinitions with an explicit batch dimension.\"")
            self._logger.log(FakeILogger.INTERNAL_ERROR, msg)
            self._errors.append(msg)
            return False
        data = Path(path).read_bytes()
        if not data.startswith(b"\x08"):  # every ONNX ModelProto starts with field 1 (ir_version)
            self._errors.append("fake: ModelImporter.cpp: failed to parse")
            return False
        self._network._parsed = path
        import onnx

        dims = onnx.load(path, load_external_data=False).graph.input[0].type.tensor_type.shape.dim
        self._network._input_shape = [d.dim_value if d.HasField("dim_value") else -1 for d in dims]
        self._network._layers = [FakeLayer(self._trt, i, k) for i, k in enumerate(self._trt._layers)]
        return True

    def get_error(self, i: int) -> str:
        return self._errors[i]

    def set_flag(self, flag: Member) -> None:
        pass


class FakeRuntime(Strict):
    _kind = "Runtime"

    def __init__(self, trt: FakeTensorRT, logger) -> None:
        super().__init__(trt._classes["Runtime"], trt._version)
        self._trt, self._logger = trt, logger
        self.DLA_core = -1
        if "engine_host_code_allowed" in self._names:
            self.engine_host_code_allowed = False  # IRuntime::setEngineHostCodeAllowed: default false

    def deserialize_cuda_engine(self, data: bytes):
        self._trt._deserialized.append(bytes(data))
        if not data.startswith(b"FAKEPLAN"):
            self._logger.log(FakeILogger.ERROR, "fake: the plan is not a serialized engine (magic tag mismatch)")
            return None
        plan = json.loads(data[len(b"FAKEPLAN"):])
        if plan.get("version_compatible") and not self.engine_host_code_allowed:
            self._logger.log(FakeILogger.ERROR, "fake: engine contains host code, which is not allowed "
                                                "(IRuntime::setEngineHostCodeAllowed)")
            return None
        return FakeEngine(self._trt, plan)


class FakeEngine(Strict):
    _kind = "ICudaEngine"

    def __init__(self, trt: FakeTensorRT, plan: dict) -> None:
        super().__init__(trt._classes["ICudaEngine"], trt._version)
        self._trt, self._plan = trt, plan
        self.num_io_tensors = 2
        self.num_optimization_profiles = 1
        self.num_layers = len(trt._layers)

    def get_tensor_name(self, i: int) -> str:
        return ["image", "logits"][i]

    def get_tensor_mode(self, name: str):
        return self._trt.TensorIOMode.INPUT if name == "image" else self._trt.TensorIOMode.OUTPUT

    def get_tensor_shape(self, name: str):
        prof = self._plan["profile"].get("image")
        if prof is None:  # no profile: the ONNX's own (static) shape
            shape = tuple(self._plan["input_shape"])
        else:
            shape = tuple(prof[0]) if prof[0] == prof[2] else (-1, 3, 16, 16)
        return shape if name == "image" else (shape[0], TINY_CLASSES)

    def get_tensor_dtype(self, name: str):
        return self._trt.DataType.FLOAT

    def get_tensor_profile_shape(self, name: str, profile: int):
        if name not in self._plan["profile"]:
            raise RuntimeError(f"fake: no optimization profile for {name} (an INPUT-only API on profile shapes)")
        return [tuple(s) for s in self._plan["profile"][name]]

    def create_execution_context(self):
        return FakeContext(self._trt, self)

    def create_engine_inspector(self):
        return SimpleNamespace(get_layer_information=lambda i, f: "{}", get_engine_information=lambda f: "{}")


class FakeContext(Strict):
    _kind = "IExecutionContext"

    def __init__(self, trt: FakeTensorRT, engine: FakeEngine) -> None:
        super().__init__(trt._classes["IExecutionContext"], trt._version)
        self._trt, self._engine = trt, engine
        static = engine.get_tensor_shape("image")
        self._shapes: dict = {"image": tuple(static)} if -1 not in static else {}
        self._addr: dict = {}

    def set_input_shape(self, name, shape) -> bool:
        self._shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        if "image" not in self._shapes:
            return self._engine.get_tensor_shape(name)
        return self._shapes["image"] if name == "image" else (self._shapes["image"][0], TINY_CLASSES)

    def get_max_output_size(self, name) -> int:
        return 4 * int(np.prod(self.get_tensor_shape(name)))

    def set_output_allocator(self, name, allocator) -> bool:
        return True

    def set_tensor_address(self, name, ptr) -> bool:
        self._addr[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        shape = self._shapes["image"]
        n = int(np.prod(shape))
        x = np.frombuffer((ctypes.c_float * n).from_address(self._addr["image"]), dtype=np.float32).reshape(shape)
        y = np.frombuffer(
            (ctypes.c_float * (shape[0] * TINY_CLASSES)).from_address(self._addr["logits"]), dtype=np.float32
        ).reshape(shape[0], TINY_CLASSES)
        y[:] = x.reshape(shape[0], -1).mean(1, keepdims=True) * np.arange(1, TINY_CLASSES + 1, dtype=np.float32)
        self._trt._gpu.advance(int(stream_handle), COMPUTE_MS)
        return True


def install(monkeypatch, version: str = "10.3.0", *, gpu: FakeGPU | None = None, runtime_version: int = 12060,
            cuda_python_version: int = 12090, **kw):
    """Patch edgekit to see this fake: TensorRT, the libcudart TensorRT uses, and (for older code) cuda-python.

    Returns ``(trt, gpu)``. Patches are by name with ``raising=False`` so the same tests run against the code
    before and after the runtime package move (the older names simply do not exist on the newer code).
    """
    gpu = gpu or FakeGPU()
    trt = FakeTensorRT(version, gpu=gpu, **kw)
    lib = FakeLibcudart(gpu, runtime_version)
    cp = FakeCudaPython(gpu, cuda_python_version)
    for target, value in (
        ("edgekit.runtime.tensorrt.env._import_tensorrt_module", lambda: trt),
        ("edgekit.runtime.tensorrt.cuda.open_libcudart", lambda *a, **k: lib),
        ("edgekit.runtime.tensorrt.runner.import_tensorrt", lambda: trt),  # code before the fix
        ("edgekit.runtime.tensorrt.runner.import_cudart", lambda: cp),
        ("edgekit.runtime.tensorrt.import_tensorrt", lambda: trt),  # code before the package move
        ("edgekit.runtime.tensorrt.import_cudart", lambda: cp),
    ):
        mod_name, attr = target.rsplit(".", 1)
        try:
            mod = importlib.import_module(mod_name)
        except ImportError:
            continue
        if hasattr(mod, attr):
            monkeypatch.setattr(mod, attr, value)
    return trt, gpu
