"""Models and inputs for the runtime backend tests.

* ``tiny_onnx``: a small conv classifier written with ``onnx.helper`` (fast,
  dynamic batch, seeded weights: backend parity only, never accuracy);
  variants with a static batch, Q/DQ nodes, and float16 weights.
* ``mobilenet_onnx``: timm ``mobilenetv3_small_100`` exported with
  ``torch.onnx.export(dynamo=False, opset 17)``, random-init weights (pure
  backend parity), dynamic batch; slow, once per session.
* ``photos``: real photographs from scikit-image, resized to 224 and
  normalized with the ImageNet mean/std, NCHW float32.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], dtype=np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], dtype=np.float32)
TINY_CLASSES = 5


def make_tiny_onnx(
    path: Path,
    *,
    batch: int | str = "batch",
    dtype: str = "float32",
    qdq: bool = False,
    size: int = 16,
    seed: int = 0,
) -> Path:
    """image[batch,3,size,size] -> Conv3x3(8) -> Relu -> GAP -> Flatten -> Gemm -> logits[batch,5]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    np_dtype = np.float16 if dtype == "float16" else np.float32
    elem = TensorProto.FLOAT16 if dtype == "float16" else TensorProto.FLOAT
    w = (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np_dtype)
    b = (rng.standard_normal(8) * 0.1).astype(np_dtype)
    fw = (rng.standard_normal((TINY_CLASSES, 8)) * 0.5).astype(np_dtype)
    fb = (rng.standard_normal(TINY_CLASSES) * 0.1).astype(np_dtype)
    inits = [
        numpy_helper.from_array(w, "conv.w"),
        numpy_helper.from_array(b, "conv.b"),
        numpy_helper.from_array(fw, "fc.w"),
        numpy_helper.from_array(fb, "fc.b"),
    ]
    nodes = []
    conv_in = "image"
    if qdq:
        # symmetric int8 activation and weight quantization, as TensorRT wants it
        inits += [
            numpy_helper.from_array(np.array(0.02, dtype=np.float32), "x.scale"),
            numpy_helper.from_array(np.array(0, dtype=np.int8), "x.zp"),
            numpy_helper.from_array(np.array(0.01, dtype=np.float32), "w.scale"),
            numpy_helper.from_array(np.array(0, dtype=np.int8), "w.zp"),
        ]
        nodes += [
            helper.make_node("QuantizeLinear", ["image", "x.scale", "x.zp"], ["image.q"]),
            helper.make_node("DequantizeLinear", ["image.q", "x.scale", "x.zp"], ["image.dq"]),
            helper.make_node("QuantizeLinear", ["conv.w", "w.scale", "w.zp"], ["conv.w.q"]),
            helper.make_node("DequantizeLinear", ["conv.w.q", "w.scale", "w.zp"], ["conv.w.dq"]),
        ]
        conv_in = "image.dq"
    nodes += [
        helper.make_node(
            "Conv", [conv_in, "conv.w.dq" if qdq else "conv.w", "conv.b"], ["conv"], pads=[1, 1, 1, 1]
        ),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("GlobalAveragePool", ["relu"], ["gap"]),
        helper.make_node("Flatten", ["gap"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], transB=1),
    ]
    graph = helper.make_graph(
        nodes,
        "edgekit_tiny",
        [helper.make_tensor_value_info("image", elem, [batch, 3, size, size])],
        [helper.make_tensor_value_info("logits", elem, [batch, TINY_CLASSES])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], producer_name="edgekit-tests")
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    onnx.save(model, str(path))
    return path


@pytest.fixture(scope="session")
def tiny_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx", reason="building test graphs needs onnx")
    return make_tiny_onnx(tmp_path_factory.mktemp("tiny") / "tiny.onnx")


@pytest.fixture(scope="session")
def tiny_static_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx", reason="building test graphs needs onnx")
    return make_tiny_onnx(tmp_path_factory.mktemp("tiny") / "tiny_static.onnx", batch=1)


@pytest.fixture(scope="session")
def tiny_qdq_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx", reason="building test graphs needs onnx")
    return make_tiny_onnx(tmp_path_factory.mktemp("tiny") / "tiny_qdq.onnx", qdq=True)


@pytest.fixture(scope="session")
def tiny_fp16_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("onnx", reason="building test graphs needs onnx")
    return make_tiny_onnx(tmp_path_factory.mktemp("tiny") / "tiny_fp16.onnx", dtype="float16")


@pytest.fixture
def tiny_inputs() -> np.ndarray:
    """Four seeded inputs for the tiny model (NCHW float32)."""
    return np.random.default_rng(1).standard_normal((4, 3, 16, 16)).astype(np.float32)


@pytest.fixture(scope="session")
def mobilenet_onnx(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """timm mobilenetv3_small_100 (random init, seeded) as ONNX opset 17 with a dynamic batch."""
    torch = pytest.importorskip("torch", reason="exporting the test model needs the 'torch' extra")
    timm = pytest.importorskip("timm", reason="exporting the test model needs timm")
    torch.manual_seed(0)
    model = timm.create_model("mobilenetv3_small_100", pretrained=False).eval()
    path = tmp_path_factory.mktemp("mobilenet") / "mobilenetv3_small_100.onnx"
    with torch.no_grad():
        torch.onnx.export(
            model,
            (torch.zeros(1, 3, 224, 224),),
            str(path),
            dynamo=False,
            opset_version=17,
            input_names=["input"],
            output_names=["logits"],
            dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}},
        )
    return path


@pytest.fixture(scope="session")
def photos() -> np.ndarray:
    """chelsea, coffee, astronaut: resized to 224x224, ImageNet-normalized, (3, 3, 224, 224) float32."""
    data = pytest.importorskip("skimage.data", reason="real test photos come from scikit-image")
    from PIL import Image

    batch = []
    for name in ("chelsea", "coffee", "astronaut"):
        img = Image.fromarray(getattr(data, name)()).convert("RGB").resize((224, 224), Image.BILINEAR)
        x = (np.asarray(img, dtype=np.float32) / 255.0 - IMAGENET_MEAN) / IMAGENET_STD
        batch.append(x.transpose(2, 0, 1))
    return np.ascontiguousarray(np.stack(batch), dtype=np.float32)


@pytest.fixture(scope="session")
def ort_reference():
    """f(model_path, feeds) -> outputs of plain ONNX Runtime (CPU, default options): the parity reference."""
    ort = pytest.importorskip("onnxruntime", reason="the parity reference is ONNX Runtime")

    def run(model_path: Path, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        sess = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
        names = [o.name for o in sess.get_outputs()]
        return dict(zip(names, sess.run(names, feeds)))

    return run


# -- a fake TensorRT + cuda-python, for the backend's logic on machines without a GPU --------------
#
# They follow the TensorRT 10 / 11 Python API (Builder, BuilderConfig, OnnxParser, Runtime,
# ICudaEngine, IExecutionContext) and cuda-python's ``(err, value)`` convention closely enough to
# drive edgekit's code paths; what real TensorRT does is checked by the GPU tests.


class _Member:
    def __init__(self, enum: str, name: str, value: int) -> None:
        self.enum, self.name, self.value = enum, name, value

    def __int__(self) -> int:
        return self.value

    def __repr__(self) -> str:
        return f"{self.enum}.{self.name}"


def _enum(name: str, members: list[str]) -> type:
    return type(name, (), {m: _Member(name, m, i) for i, m in enumerate(members)})


class FakeILogger:
    INTERNAL_ERROR, ERROR, WARNING, INFO, VERBOSE = range(5)

    def __init__(self) -> None:
        pass


class FakeTensorRT:
    """``tensorrt`` as seen by edgekit. ``v11=True`` drops FP16/INT8 builder flags, as TensorRT 11 did."""

    def __init__(self, version: str = "10.3.0", *, v11: bool = False, fail_build: bool = False) -> None:
        self.__version__ = version
        flags = ["DEBUG", "GPU_FALLBACK", "TF32", "VERSION_COMPATIBLE"] + ([] if v11 else ["FP16", "BF16", "INT8"])
        self.BuilderFlag = _enum("BuilderFlag", flags)
        self.NetworkDefinitionCreationFlag = _enum(
            "NetworkDefinitionCreationFlag", ["STRONGLY_TYPED"] if v11 else ["EXPLICIT_BATCH", "STRONGLY_TYPED"]
        )
        self.MemoryPoolType = _enum("MemoryPoolType", ["WORKSPACE"])
        self.DeviceType = _enum("DeviceType", ["GPU", "DLA"])
        self.HardwareCompatibilityLevel = _enum("HardwareCompatibilityLevel", ["NONE", "AMPERE_PLUS"])
        self.TensorIOMode = _enum("TensorIOMode", ["NONE", "INPUT", "OUTPUT"])
        self.DataType = _enum("DataType", ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "INT64", "BF16"])
        self.ILogger = FakeILogger
        self.fail_build = fail_build
        self.configs: list[FakeConfig] = []
        self.networks: list[dict] = []
        self.deserialized: list[bytes] = []

    def Builder(self, logger):  # noqa: N802 - TensorRT's name
        return FakeBuilder(self, logger)

    def OnnxParser(self, network, logger):  # noqa: N802
        return FakeParser(network)

    def Runtime(self, logger):  # noqa: N802
        return FakeRuntime(self, logger)


class FakeTimingCache:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def serialize(self) -> bytes:
        return self.data + b"+tuned"


class FakeConfig:
    def __init__(self, trt: FakeTensorRT) -> None:
        self.trt = trt
        self.flags = {"TF32"}  # on by default, as in TensorRT
        self.pool: dict = {}
        self.profiles: list[dict] = []
        self.timing_cache_in: bytes | None = None
        self.builder_optimization_level = 3
        self.default_device_type = None
        self.DLA_core = -1
        self.hardware_compatibility_level = None

    def set_flag(self, f: _Member) -> None:
        self.flags.add(f.name)

    def clear_flag(self, f: _Member) -> None:
        self.flags.discard(f.name)

    def set_memory_pool_limit(self, pool: _Member, size: int) -> None:
        self.pool[pool.name] = size

    def add_optimization_profile(self, p: dict) -> int:
        self.profiles.append(p)
        return len(self.profiles) - 1

    def create_timing_cache(self, data: bytes) -> FakeTimingCache:
        self.timing_cache_in = bytes(data)
        return FakeTimingCache(bytes(data))

    def set_timing_cache(self, cache: FakeTimingCache, ignore_mismatch: bool) -> bool:
        self._cache = cache
        return not cache.data.startswith(b"other-device")

    def get_timing_cache(self) -> FakeTimingCache:
        return self._cache


class FakeBuilder:
    num_DLA_cores = 0

    def __init__(self, trt: FakeTensorRT, logger) -> None:
        self.trt, self.logger = trt, logger

    def create_network(self, flags: int = 0) -> dict:
        net = {"flags": flags, "parsed": None}
        self.trt.networks.append(net)
        return net

    def create_builder_config(self) -> FakeConfig:
        cfg = FakeConfig(self.trt)
        self.trt.configs.append(cfg)
        return cfg

    def create_optimization_profile(self) -> dict:
        class Profile(dict):
            def set_shape(self, name, lo, opt, hi):
                self[name] = (tuple(lo), tuple(opt), tuple(hi))

        return Profile()

    def build_serialized_network(self, network: dict, config: FakeConfig):
        if self.trt.fail_build:
            self.logger.log(FakeILogger.ERROR, "fake: no implementation for node Conv_0")
            return None
        import json as _json

        profile = config.profiles[0] if config.profiles else {}
        return b"FAKEPLAN" + _json.dumps({"profile": {k: list(map(list, v)) for k, v in profile.items()}}).encode()


class FakeParser:
    num_errors = 0

    def __init__(self, network: dict) -> None:
        self.network = network

    def parse_from_file(self, path: str) -> bool:
        data = Path(path).read_bytes()
        if not data.startswith(b"\x08"):  # every ONNX ModelProto starts with field 1 (ir_version)
            self.num_errors = 1
            return False
        self.network["parsed"] = path
        return True

    def get_error(self, i: int) -> str:
        return "fake: ModelImporter.cpp: failed to parse"


class FakeRuntime:
    def __init__(self, trt: FakeTensorRT, logger) -> None:
        self.trt = trt
        self.DLA_core = -1

    def deserialize_cuda_engine(self, data: bytes):
        import json as _json

        self.trt.deserialized.append(bytes(data))
        if not data.startswith(b"FAKEPLAN"):
            return None
        return FakeEngine(self.trt, _json.loads(data[len(b"FAKEPLAN") :]))


class FakeEngine:
    """The tiny model's I/O: image[-1,3,16,16] -> logits[-1,5]; logits[b,k] = mean(image[b]) * (k+1)."""

    def __init__(self, trt: FakeTensorRT, plan: dict) -> None:
        self.trt, self.plan = trt, plan
        self.num_io_tensors = 2

    def get_tensor_name(self, i: int) -> str:
        return ["image", "logits"][i]

    def get_tensor_mode(self, name: str):
        return self.trt.TensorIOMode.INPUT if name == "image" else self.trt.TensorIOMode.OUTPUT

    def get_tensor_shape(self, name: str):
        return (-1, 3, 16, 16) if name == "image" else (-1, TINY_CLASSES)

    def get_tensor_dtype(self, name: str):
        return self.trt.DataType.FLOAT

    def get_tensor_profile_shape(self, name: str, profile: int):
        return [tuple(s) for s in self.plan["profile"][name]]

    def create_execution_context(self):
        return FakeContext()


class FakeContext:
    def __init__(self) -> None:
        self.shapes: dict = {}
        self.addr: dict = {}

    def set_input_shape(self, name, shape) -> bool:
        self.shapes[name] = tuple(shape)
        return True

    def get_tensor_shape(self, name):
        return self.shapes["image"] if name == "image" else (self.shapes["image"][0], TINY_CLASSES)

    def set_tensor_address(self, name, ptr) -> bool:
        self.addr[name] = ptr
        return True

    def execute_async_v3(self, stream_handle: int) -> bool:
        import ctypes

        shape = self.shapes["image"]
        n = int(np.prod(shape))
        x = np.frombuffer((ctypes.c_float * n).from_address(self.addr["image"]), dtype=np.float32).reshape(shape)
        y = np.frombuffer(
            (ctypes.c_float * (shape[0] * TINY_CLASSES)).from_address(self.addr["logits"]), dtype=np.float32
        ).reshape(shape[0], TINY_CLASSES)
        y[:] = x.reshape(shape[0], -1).mean(1, keepdims=True) * np.arange(1, TINY_CLASSES + 1, dtype=np.float32)
        return True


class FakeCudart:
    """cuda-python's runtime module: every call returns ``(err, *values)``; memory is host memory."""

    cudaMemcpyKind = _enum("cudaMemcpyKind", ["cudaMemcpyHostToHost", "cudaMemcpyHostToDevice", "cudaMemcpyDeviceToHost"])

    def __init__(self) -> None:
        self.buffers: dict[int, object] = {}
        self.freed: list[int] = []
        self.copies: list[str] = []

    def _alloc(self, n: int):
        import ctypes

        buf = (ctypes.c_byte * n)()
        addr = ctypes.addressof(buf)
        self.buffers[addr] = buf
        return 0, addr

    def cudaMalloc(self, n):  # noqa: N802
        return self._alloc(n)

    def cudaMallocHost(self, n):  # noqa: N802
        return self._alloc(n)

    def cudaFree(self, p):  # noqa: N802
        self.freed.append(p)
        return (0,)

    cudaFreeHost = cudaFree

    def cudaMemcpyAsync(self, dst, src, n, kind, stream):  # noqa: N802
        import ctypes

        ctypes.memmove(dst, src, n)
        self.copies.append(kind.name)
        return (0,)

    def cudaStreamCreate(self):  # noqa: N802
        return 0, 7

    def cudaStreamDestroy(self, s):  # noqa: N802
        return (0,)

    def cudaStreamSynchronize(self, s):  # noqa: N802
        return (0,)

    def cudaEventCreate(self):  # noqa: N802
        return 0, 11

    def cudaEventDestroy(self, e):  # noqa: N802
        return (0,)

    def cudaEventRecord(self, e, s):  # noqa: N802
        return (0,)

    def cudaEventElapsedTime(self, a, b):  # noqa: N802
        return 0, 0.25

    def cudaSetDevice(self, d):  # noqa: N802
        return (0,)

    def cudaGetDeviceCount(self):  # noqa: N802
        return 0, 1

    def cudaRuntimeGetVersion(self):  # noqa: N802
        return 0, 12060

    def cudaGetDeviceProperties(self, d):  # noqa: N802
        from types import SimpleNamespace

        return 0, SimpleNamespace(name=b"Orin\x00\x00", major=8, minor=7)


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch):
    """f(version="10.3.0", v11=False, fail_build=False) -> (FakeTensorRT, FakeCudart), patched into edgekit."""
    import edgekit.runtime.tensorrt.runner as trt_mod

    cudart = FakeCudart()

    def install(version: str = "10.3.0", *, v11: bool = False, fail_build: bool = False):
        trt = FakeTensorRT(version, v11=v11, fail_build=fail_build)
        monkeypatch.setattr(trt_mod, "import_tensorrt", lambda: trt)
        monkeypatch.setattr(trt_mod, "import_cudart", lambda: cudart)
        return trt, cudart

    return install
