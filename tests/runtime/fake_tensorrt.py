"""A strict fake TensorRT, CUDA runtime (libcudart through ctypes) and cuda-python, for machines without a GPU.

Strict means it fails the way the real thing does:

* every fake object answers only the names the real module of that TensorRT version has
  (:mod:`trt_api_names`, read from the PyPI bindings 8.6.1 / 10.3.0 / 11.4.0): any other name, read or
  assigned, raises ``AttributeError`` as a pybind11 object does;
* TensorRT 8.x networks created without ``EXPLICIT_BATCH`` are implicit batch and the ONNX parser asserts;
* a version-compatible plan deserializes only with ``runtime.engine_host_code_allowed = True``;
* DLA: ``num_DLA_cores`` per device, ``config.can_run_on_DLA(layer)`` per layer kind, and a build with a
  non-DLA layer fails unless ``GPU_FALLBACK`` is set;
* the CUDA side (fake_cuda.py): a fake ``libcudart.so`` through ctypes that fails without a (new enough) driver
  as the real one does, and per-stream clocks so CUDA events measure H2D, compute and D2H separately.

The tiny engine: ``image[-1,3,16,16] -> logits[-1,5]``, ``logits[b,k] = mean(image[b]) * (k+1)``.
"""

from __future__ import annotations

import ctypes
import importlib
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

# loaded by path (tests/runtime/conftest.py: load_fake_tensorrt) with tests/runtime on sys.path
from fake_cuda import COMPUTE_MS, D2H_MS, H2D_MS, FakeCudaPython, FakeGPU, FakeLibcudart  # noqa: F401
from trt_api_names import Member, Strict, api, enum_type

TINY_CLASSES = 5


class FakeILogger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self) -> None:
        pass


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
            object.__setattr__(self, enum, enum_type(enum, members, version))
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
