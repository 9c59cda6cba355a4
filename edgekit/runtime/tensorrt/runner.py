"""TensorRT backend: load a verified engine, run it with cuda-python, time it two ways.

Loading never trusts an engine file: its sidecar (``model.engine.json``) must
exist, the engine's bytes must hash to the sha256 recorded there (deserializing
runs native code), and the key recorded there must match this device (TensorRT,
CUDA, GPU and compute capability, L4T/JetPack) before TensorRT sees the bytes.

Each :meth:`TensorRTRunner.infer` records :attr:`TensorRTRunner.last_timing`:
the GPU compute time between CUDA events around ``execute_async_v3``, and the
end-to-end host latency (copy in, compute, copy out, synchronize), as trtexec
reports them.

CUDA comes from cuda-python, as ``cuda.bindings.runtime`` (cuda-python >= 12.6)
or ``cuda.cudart`` (older releases). Build functions live in
:mod:`edgekit.runtime.tensorrt.builder` and are re-exported here.
"""

from __future__ import annotations

import ctypes
import importlib
import importlib.util
import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import ArtifactError, MissingDependencyError, UsageError
from edgekit.core.specs import TensorSpec
from edgekit.runtime.base import Runner, RunnerInfo
from edgekit.runtime.tensorrt.engine_key import check_engine_compat, jetson_environment, read_verified_engine
from edgekit.runtime.tensorrt.builder import build_engine, build_engine_file, make_logger

__all__ = [
    "TensorRTRunner",
    "TensorRTTiming",
    "build_engine",
    "build_engine_file",
    "device_environment",
    "gpu_unavailable_reason",
    "import_cudart",
    "import_tensorrt",
]

log = logging.getLogger(__name__)

JETSON_NOTE = (
    "TensorRT engines; on a Jetson TensorRT ships with JetPack (python3-libnvinfer): "
    "create the venv with --system-site-packages"
)
_TRT_DTYPES = {
    "FLOAT": "float32",
    "HALF": "float16",
    "BF16": "bfloat16",
    "INT8": "int8",
    "UINT8": "uint8",
    "INT32": "int32",
    "INT64": "int64",
    "BOOL": "bool",
}


def import_tensorrt() -> Any:
    """``import tensorrt`` or a MissingDependencyError naming the extra (and JetPack)."""
    if importlib.util.find_spec("tensorrt") is None:
        raise MissingDependencyError("tensorrt", "tensorrt", purpose=JETSON_NOTE)
    return importlib.import_module("tensorrt")


def import_cudart() -> Any:
    """The CUDA runtime bindings of cuda-python, from either import path."""
    if importlib.util.find_spec("cuda") is None:
        raise MissingDependencyError("cuda-python", "tensorrt", purpose="CUDA buffers and streams for TensorRT")
    for name in ("cuda.bindings.runtime", "cuda.cudart"):
        try:
            return importlib.import_module(name)
        except ModuleNotFoundError as e:
            if e.name not in (name, name.rsplit(".", 1)[0]):
                raise  # an installed module failing inside: a broken installation, not a missing one
    raise MissingDependencyError("cuda-python", "tensorrt", purpose="neither cuda.bindings.runtime nor cuda.cudart")


def gpu_unavailable_reason() -> str | None:
    """Why TensorRT cannot run here, or None when it can (imports nothing when not installed)."""
    if importlib.util.find_spec("tensorrt") is None:
        return "the tensorrt package cannot be imported"
    if importlib.util.find_spec("cuda") is None:
        return "cuda-python is not installed"
    try:
        cudart = import_cudart()
    except MissingDependencyError as e:
        return str(e)
    err, count = cudart.cudaGetDeviceCount()
    if int(err) != 0 or count < 1:
        return f"no CUDA device ({err})"
    return None


class _Cuda:
    """Checked calls into the cuda-python runtime (which returns ``(err, *values)``)."""

    def __init__(self, rt: Any) -> None:
        self.rt = rt

    def __call__(self, fn: str, *args: Any) -> Any:
        res = getattr(self.rt, fn)(*args)
        res = res if isinstance(res, tuple) else (res,)
        if int(res[0]) != 0:
            raise RuntimeError(f"CUDA {fn} failed: {res[0]}")
        return res[1] if len(res) == 2 else (res[1:] or None)


def _handle(obj: Any) -> int:
    try:
        return int(obj)
    except TypeError:
        return int(obj.getPtr())


def cudnn_version() -> str | None:
    """The cuDNN library version if one can be loaded (TensorRT >= 10 does not need it)."""
    for lib in ("libcudnn.so.9", "libcudnn.so.8", "libcudnn.so"):
        try:
            v = int(ctypes.CDLL(lib).cudnnGetVersion())
        except OSError:
            continue
        major, rest = (v // 10000, v % 10000) if v >= 90000 else (v // 1000, v % 1000)
        return f"{major}.{rest // 100}.{rest % 100}"
    return None


def device_environment(trt: Any, *, device: int = 0, cudart: Any = None) -> dict[str, Any]:
    """The environment fields of an EngineKey, read on this machine."""
    cuda = _Cuda(cudart or import_cudart())
    props = cuda("cudaGetDeviceProperties", device)
    name = props.name.decode("utf-8", "replace") if isinstance(props.name, bytes) else str(props.name)
    rt = int(cuda("cudaRuntimeGetVersion"))
    env: dict[str, Any] = {
        "tensorrt_version": str(trt.__version__),
        "cuda_version": f"{rt // 1000}.{(rt % 1000) // 10}",
        "cudnn_version": cudnn_version(),
        "gpu_name": name.rstrip("\x00").strip(),
        "compute_capability": f"{props.major}.{props.minor}",
    }
    env.update(jetson_environment())
    return env


@dataclass(frozen=True)
class TensorRTTiming:
    """One inference: GPU compute (CUDA events) and end-to-end host latency, in ms."""

    gpu_compute_ms: float
    host_ms: float

    def to_json(self) -> dict[str, float]:
        return {"gpu_compute_ms": self.gpu_compute_ms, "host_ms": self.host_ms}


class TensorRTRunner(Runner):
    """Run a TensorRT engine built by :func:`build_engine_file` (engine + sidecar)."""

    name = "tensorrt"
    runtime_timer = "TensorRT GPU compute (CUDA events around execute_async_v3; trtexec's GPU Compute Time)"

    def __init__(self, model_path: str | Path, *, device: int = 0) -> None:
        super().__init__(model_path)
        self._trt = import_tensorrt()
        if not isinstance(device, int) or device < 0:
            raise UsageError(f"device must be a CUDA device index, got {device!r}")
        self.device = device
        self._res: dict[str, Any] = {}
        self._last: TensorRTTiming | None = None

    @property
    def last_timing(self) -> TensorRTTiming | None:
        """Timing of the most recent :meth:`infer` (None before the first)."""
        return self._last

    def _last_runtime_ns_impl(self) -> int | None:
        return int(round(self._last.gpu_compute_ms * 1e6)) if self._last is not None else None

    # -- lifecycle -------------------------------------------------------
    def _activate_impl(self) -> None:
        trt, rt = self._trt, import_cudart()
        cuda = _Cuda(rt)
        data, key = read_verified_engine(self.model_path)  # sha256 first: never deserialize an unknown engine
        cuda("cudaSetDevice", self.device)
        env = device_environment(trt, device=self.device, cudart=rt)
        check_engine_compat(key, key.with_environment(env), engine=self.model_path)
        logger = make_logger(trt)
        runtime = trt.Runtime(logger)
        if key.dla_core is not None:
            runtime.DLA_core = key.dla_core
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise ArtifactError(f"TensorRT could not deserialize {self.model_path}: {' | '.join(logger.errors)[:400]}")
        context = engine.create_execution_context()
        res: dict[str, Any] = {"cuda": cuda, "rt": rt, "runtime": runtime, "engine": engine, "context": context}
        res.update(key=key, env=env, logger=logger, dev={}, host={}, ranges={})
        self._res = res
        try:
            self._allocate(engine, context, key)
        except BaseException:
            self._deactivate_impl()
            raise

    def _allocate(self, engine: Any, context: Any, key: Any) -> None:
        trt, res, cuda, rt = self._trt, self._res, self._res["cuda"], self._res["rt"]
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        ins = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if n not in ins]
        recorded = {d["name"]: d for d in key.extra.get("inputs", []) + key.extra.get("outputs", [])}
        for n in ins:  # profile 0 bounds each input; set inputs to max to size every buffer
            lo, _opt, hi = (tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(n, 0))
            res["ranges"][n] = (lo, hi)
            context.set_input_shape(n, hi)
        res["inputs"] = tuple(self._spec(engine, n, recorded) for n in ins)
        res["outputs"] = tuple(self._spec(engine, n, recorded) for n in outs)
        res["stream"] = cuda("cudaStreamCreate")
        res["events"] = (cuda("cudaEventCreate"), cuda("cudaEventCreate"))
        for n in names:
            shape = tuple(context.get_tensor_shape(n))
            dtype = np.dtype(self._dtype(engine, n))
            nbytes = int(np.prod(shape)) * dtype.itemsize
            res["dev"][n] = cuda("cudaMalloc", max(nbytes, 1))
            host_ptr = cuda("cudaMallocHost", max(nbytes, 1))  # pinned: async copies really overlap
            buf = (ctypes.c_byte * max(nbytes, 1)).from_address(host_ptr)
            res["host"][n] = (host_ptr, np.frombuffer(buf, dtype=np.uint8))
            if not context.set_tensor_address(n, res["dev"][n]):
                raise ArtifactError(f"TensorRT refused the device buffer for tensor {n!r}")
        res["h2d"] = rt.cudaMemcpyKind.cudaMemcpyHostToDevice
        res["d2h"] = rt.cudaMemcpyKind.cudaMemcpyDeviceToHost

    def _dtype(self, engine: Any, name: str) -> str:
        dt = engine.get_tensor_dtype(name)
        label = getattr(dt, "name", str(dt).split(".")[-1])
        if label not in _TRT_DTYPES or label == "BF16":
            raise ArtifactError(f"engine tensor {name!r} has type {label}, which numpy cannot hold")
        return _TRT_DTYPES[label]

    def _spec(self, engine: Any, name: str, recorded: dict[str, Any]) -> TensorSpec:
        dims = tuple(int(d) for d in engine.get_tensor_shape(name))
        onnx = recorded.get(name, {}).get("shape", [])
        shape = tuple(
            d if d >= 0 else (onnx[i] if i < len(onnx) and isinstance(onnx[i], str) else f"?{i}")
            for i, d in enumerate(dims)
        )
        return TensorSpec(name=name, shape=shape, dtype=self._dtype(engine, name))

    def _deactivate_impl(self) -> None:
        res, self._res = self._res, {}
        cuda = res.get("cuda")
        if cuda is None:
            return
        for ptr in res.get("dev", {}).values():
            cuda("cudaFree", ptr)
        for ptr, _ in res.get("host", {}).values():
            cuda("cudaFreeHost", ptr)
        for ev in res.get("events", ()):
            cuda("cudaEventDestroy", ev)
        if "stream" in res:
            cuda("cudaStreamDestroy", res["stream"])
        for k in ("context", "engine", "runtime"):  # destroy in dependency order
            res.pop(k, None)

    # -- protocol --------------------------------------------------------
    def _inputs_impl(self) -> tuple[TensorSpec, ...]:
        return tuple(self._res["inputs"])

    def _outputs_impl(self) -> tuple[TensorSpec, ...]:
        return tuple(self._res["outputs"])

    def validate_feeds(self, feeds: dict[str, np.ndarray]) -> None:
        super().validate_feeds(feeds)
        for name, arr in feeds.items():
            lo, hi = self._res["ranges"][name]
            if any(a < mn or a > mx for a, mn, mx in zip(arr.shape, lo, hi)):
                raise UsageError(
                    f"input {name!r} has shape {tuple(arr.shape)}, outside the engine's profile {lo} .. {hi}",
                    hint="rebuild the engine with wider shapes",
                )

    def _info_impl(self) -> RunnerInfo:
        key, env = self._res["key"], self._res["env"]
        note = None
        if not key.strongly_typed and key.precision in ("fp16", "int8"):
            note = (
                f"{key.precision} is allowed, not forced, per layer (weakly typed network): "
                "inspect layer precisions with the engine inspector"
            )
        device = f"dla:{key.dla_core}" if key.dla_core is not None else f"cuda:{self.device} {env['gpu_name']}"
        return RunnerInfo(
            runtime=self.name,
            runtime_version=str(self._trt.__version__),
            device=device,
            precision=key.precision,
            threads=None,
            details={
                "key_digest": key.digest(),
                "key": key.to_json(),
                "environment": dict(env),
                "strongly_typed": key.strongly_typed,
                "builder_flags": key.extra.get("builder_flags", []),
                "tf32": False,
                "precision_note": note,
                "last_timing": self._last.to_json() if self._last else None,
            },
        )

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        res, cuda = self._res, self._res["cuda"]
        ctx, stream = res["context"], res["stream"]
        start, end = res["events"]
        t0 = time.perf_counter_ns()
        for name, arr in feeds.items():
            if not ctx.set_input_shape(name, tuple(arr.shape)):
                raise UsageError(f"TensorRT rejected shape {tuple(arr.shape)} for input {name!r}")
            ptr, host = res["host"][name]
            src = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
            host[: src.size] = src
            cuda("cudaMemcpyAsync", res["dev"][name], ptr, src.size, res["h2d"], stream)
        cuda("cudaEventRecord", start, stream)
        if not ctx.execute_async_v3(_handle(stream)):
            raise RuntimeError(f"TensorRT execute_async_v3 failed: {' | '.join(res['logger'].errors)[:400]}")
        cuda("cudaEventRecord", end, stream)
        shapes: dict[str, tuple[int, ...]] = {}
        for spec in res["outputs"]:
            shapes[spec.name] = tuple(int(d) for d in ctx.get_tensor_shape(spec.name))
            nbytes = int(np.prod(shapes[spec.name])) * np.dtype(spec.dtype).itemsize
            ptr, _ = res["host"][spec.name]
            cuda("cudaMemcpyAsync", ptr, res["dev"][spec.name], nbytes, res["d2h"], stream)
        cuda("cudaStreamSynchronize", stream)
        out = {}
        for spec in res["outputs"]:
            n = int(np.prod(shapes[spec.name]))
            host = res["host"][spec.name][1].view(np.dtype(spec.dtype))
            out[spec.name] = host[:n].reshape(shapes[spec.name]).copy()
        t1 = time.perf_counter_ns()
        gpu_ms = float(cuda("cudaEventElapsedTime", start, end))
        self._last = TensorRTTiming(gpu_compute_ms=gpu_ms, host_ms=(t1 - t0) / 1e6)
        return out
