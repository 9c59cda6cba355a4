"""TensorRT backend: load a verified engine, run it on the CUDA runtime TensorRT uses, time it as trtexec does.

Loading never trusts an engine file: its sidecar (``model.engine.json``) must
exist, the engine's bytes must hash to the sha256 recorded there (deserializing
runs native code), and the key recorded there must match this device (TensorRT,
CUDA major, GPU, compute capability, SM count, Jetson module and L4T) before
TensorRT sees the bytes.

Each :meth:`TensorRTRunner.infer` records :attr:`TensorRTRunner.last_timing`
(:class:`~.timing.TensorRTTiming`): H2D, GPU compute and D2H from CUDA events,
their sum (trtexec's Host Latency), and the Python wall time of the call.

CUDA: :mod:`.cuda` (ctypes on TensorRT's own libcudart, no cuda-python).
Build functions live in :mod:`.builder` and are re-exported here.
"""

from __future__ import annotations

import ctypes
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import ArtifactError, DeviceError, UsageError
from edgekit.core.specs import TensorSpec
from edgekit.runtime.base import Runner, RunnerInfo
from edgekit.runtime.tensorrt import cuda as _cuda
from edgekit.runtime.tensorrt import env as _env
from edgekit.runtime.tensorrt.builder import build_engine, build_engine_file
from edgekit.runtime.tensorrt.engine_key import check_engine_compat, read_verified_engine
from edgekit.runtime.tensorrt.env import device_environment, gpu_unavailable_reason, import_tensorrt
from edgekit.runtime.tensorrt.timing import EventTimer, TensorRTTiming

__all__ = [
    "TensorRTRunner",
    "TensorRTTiming",
    "build_engine",
    "build_engine_file",
    "device_environment",
    "gpu_unavailable_reason",
    "import_tensorrt",
]

log = logging.getLogger(__name__)

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


class TensorRTRunner(Runner):
    """Run a TensorRT engine built by :func:`build_engine_file` (engine + sidecar)."""

    name = "tensorrt"
    runtime_timer = "TensorRT GPU compute (CUDA events around execute_async_v3; trtexec's GPU Compute Time)"

    def __init__(self, model_path: str | Path, *, device: int = 0) -> None:
        super().__init__(model_path)
        self._trt = _env.import_tensorrt()
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
        trt = self._trt
        data, key = read_verified_engine(self.model_path)  # sha256 first: never deserialize an unknown engine
        cuda = _cuda.load_cuda(trt)  # DeviceError naming the fix when the driver does not fit
        cuda.set_device(self.device)
        env = _env.device_environment(trt, device=self.device, cuda=cuda)
        check_engine_compat(key, key.with_environment(env), engine=self.model_path)
        logger = _env.tensorrt_logger(trt)
        runtime = trt.Runtime(logger)
        if key.dla_core is not None:
            runtime.DLA_core = key.dla_core
        if key.version_compatible:
            # the plan embeds TensorRT's lean runtime (host code); the sha256 check above established trust
            runtime.engine_host_code_allowed = True
        engine = runtime.deserialize_cuda_engine(data)
        if engine is None:
            raise ArtifactError(f"TensorRT could not deserialize {self.model_path}: {' | '.join(logger.errors)[:400]}")
        context = engine.create_execution_context()
        res: dict[str, Any] = {"cuda": cuda, "runtime": runtime, "engine": engine, "context": context}
        res.update(key=key, env=env, logger=logger, dev={}, host={}, ranges={})
        self._res = res
        try:
            self._allocate(engine, context, key)
        except BaseException:
            self._deactivate_impl()
            raise

    def _input_range(self, engine: Any, name: str) -> tuple[tuple[int, ...], tuple[int, ...]]:
        dims = tuple(int(d) for d in engine.get_tensor_shape(name))
        if -1 not in dims:  # static input: an engine built without an optimization profile has none to ask
            return dims, dims
        lo, _opt, hi = (tuple(int(d) for d in s) for s in engine.get_tensor_profile_shape(name, 0))
        return lo, hi

    def _allocate(self, engine: Any, context: Any, key: Any) -> None:
        trt, res, cuda = self._trt, self._res, self._res["cuda"]
        names = [engine.get_tensor_name(i) for i in range(engine.num_io_tensors)]
        ins = [n for n in names if engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outs = [n for n in names if n not in ins]
        recorded = {d["name"]: d for d in key.extra.get("inputs", []) + key.extra.get("outputs", [])}
        for n in ins:  # profile 0 bounds each input; set inputs to max to size every buffer
            res["ranges"][n] = self._input_range(engine, n)
            context.set_input_shape(n, res["ranges"][n][1])
        res["inputs"] = tuple(self._spec(engine, n, recorded) for n in ins)
        res["outputs"] = tuple(self._spec(engine, n, recorded) for n in outs)
        res["stream"] = cuda.stream_create()
        res["timer"] = EventTimer(cuda, res["stream"])
        for n in names:
            shape = tuple(int(d) for d in context.get_tensor_shape(n))
            if any(d < 0 for d in shape):
                raise ArtifactError(
                    f"engine output {n!r} has a data-dependent shape {shape} (NonZero, NMS, ...): edgekit benchmarks "
                    "classifiers with outputs sized by their inputs",
                    hint="export the model without data-dependent outputs, or benchmark it with trtexec",
                )
            nbytes = max(int(np.prod(shape)) * np.dtype(self._dtype(engine, n)).itemsize, 1)
            res["dev"][n] = cuda.malloc(nbytes)
            host_ptr = cuda.malloc_host(nbytes)  # pinned: async copies really overlap
            res["host"][n] = (host_ptr, np.frombuffer((ctypes.c_byte * nbytes).from_address(host_ptr), np.uint8))
            if not context.set_tensor_address(n, res["dev"][n]):
                raise ArtifactError(f"TensorRT refused the device buffer for tensor {n!r}")

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
            cuda.free(ptr)
        for ptr, _ in res.get("host", {}).values():
            cuda.free_host(ptr)
        if "timer" in res:
            res["timer"].close()
        if "stream" in res:
            cuda.stream_destroy(res["stream"])
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
        placement = key.extra.get("dla_placement")
        notes = []
        if not key.strongly_typed and key.precision in ("fp16", "int8"):
            notes.append(f"{key.precision_label}: lower precision is allowed, not forced, per layer (weakly typed "
                         "network): inspect layer precisions with the engine inspector")
        if placement and placement["gpu_layers"]:
            notes.append(f"{placement['gpu_layers']} of {placement['dla_layers'] + placement['gpu_layers']} layers "
                         f"run on the GPU (GPU fallback): {', '.join(placement['on_gpu'][:8])}")
        if key.dla_core is not None:
            device = f"dla:{key.dla_core}" + ("+gpu" if placement and placement["gpu_layers"] else "")
        else:
            device = f"cuda:{self.device} {env['gpu_name']}"
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
                "precision_label": key.precision_label,
                "dla_placement": placement,
                "tf32": False,
                "precision_note": "; ".join(notes) or None,
                "timing_quantities": TensorRTTiming.DEFINITIONS,
                "last_timing": self._last.to_json() if self._last else None,
            },
        )

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        res, cuda = self._res, self._res["cuda"]
        ctx, stream, timer = res["context"], res["stream"], res["timer"]
        t0 = time.perf_counter_ns()
        for name, arr in feeds.items():
            if not ctx.set_input_shape(name, tuple(arr.shape)):
                raise UsageError(f"TensorRT rejected shape {tuple(arr.shape)} for input {name!r}")
            ptr, host = res["host"][name]
            src = np.ascontiguousarray(arr).view(np.uint8).reshape(-1)
            host[: src.size] = src
        timer.mark(0)  # H2D starts
        for name, arr in feeds.items():
            cuda.memcpy_async(res["dev"][name], res["host"][name][0], arr.nbytes, _cuda.H2D, stream)
        timer.mark(1)  # compute starts
        if not ctx.execute_async_v3(stream):
            raise DeviceError(f"TensorRT execute_async_v3 failed: {' | '.join(res['logger'].errors)[:400] or 'see the log'}")
        timer.mark(2)  # D2H starts
        shapes: dict[str, tuple[int, ...]] = {}
        for spec in res["outputs"]:
            shapes[spec.name] = tuple(int(d) for d in ctx.get_tensor_shape(spec.name))
            nbytes = int(np.prod(shapes[spec.name])) * np.dtype(spec.dtype).itemsize
            cuda.memcpy_async(res["host"][spec.name][0], res["dev"][spec.name], nbytes, _cuda.D2H, stream)
        timer.mark(3)  # D2H ends
        cuda.synchronize(stream)
        out = {}
        for spec in res["outputs"]:
            n = int(np.prod(shapes[spec.name]))
            host = res["host"][spec.name][1].view(np.dtype(spec.dtype))
            out[spec.name] = host[:n].reshape(shapes[spec.name]).copy()
        t1 = time.perf_counter_ns()
        self._last = timer.timing(python_end_to_end_ms=(t1 - t0) / 1e6)
        return out
