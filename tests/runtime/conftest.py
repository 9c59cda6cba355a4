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

import importlib.util
import sys
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


# -- the strict fake TensorRT + CUDA runtime (fake_tensorrt.py), for the backend's logic without a GPU ------------
def load_fake_tensorrt():
    """tests/runtime/fake_tensorrt.py as one module object, whoever loads it (this conftest, tests/test_build.py)."""
    name = "edgekit_tests_fake_tensorrt"
    if name not in sys.modules:
        here = Path(__file__).resolve().parent
        sys.path.insert(0, str(here))  # fake_tensorrt imports trt_api_names beside it
        try:
            spec = importlib.util.spec_from_file_location(name, here / "fake_tensorrt.py")
            mod = importlib.util.module_from_spec(spec)
            sys.modules[name] = mod
            spec.loader.exec_module(mod)
        finally:
            sys.path.remove(str(here))
    return sys.modules[name]


@pytest.fixture
def fake_trt(monkeypatch: pytest.MonkeyPatch):
    """f(version="10.3.0", *, gpu=FakeGPU(), runtime_version=12060, fail_build=False, layers=...) -> (trt, gpu)."""
    fake = load_fake_tensorrt()

    def install(version: str = "10.3.0", **kw):
        return fake.install(monkeypatch, version, **kw)

    return install


@pytest.fixture
def fake():
    """The fake_tensorrt module (FakeGPU, FakeTensorRT, ...), for tests that shape the device."""
    return load_fake_tensorrt()
