"""OpenVINO backend (CPU, GPU, AUTO), reading .onnx or IR (.xml + .bin).

The inference precision is always set explicitly with
``INFERENCE_PRECISION_HINT``: on CPUs with BF16 support OpenVINO otherwise runs
bf16 without saying so. What the compiled model reports back (precision,
performance hint, streams, threads, execution devices) is what
:attr:`OpenVINORunner.info` records; a precision the device silently replaces
with another is an error, not a quiet substitution.

``batch`` reshapes a dynamic-batch model to a static batch before compiling:
OpenVINO runs static shapes faster (and in one measured case, correctly only
with static shapes).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.lazy import require
from edgekit.core.specs import TensorSpec
from edgekit.runtime.base import Runner, RunnerInfo
from edgekit.runtime.onnx_info import GraphInfo, read_graph_info

log = logging.getLogger(__name__)

#: edgekit / user spellings -> OpenVINO element type names
PRECISION_ALIASES: dict[str, str] = {
    "f32": "f32",
    "fp32": "f32",
    "float32": "f32",
    "bf16": "bf16",
    "bfloat16": "bf16",
    "f16": "f16",
    "fp16": "f16",
    "float16": "f16",
}
#: OpenVINO element type name -> edgekit Precision value
EDGEKIT_PRECISION: dict[str, str] = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}
#: OPTIMIZATION_CAPABILITIES entries -> OpenVINO precision names
CAPABILITY_PRECISION: dict[str, str] = {"FP32": "f32", "BF16": "bf16", "FP16": "f16"}
HINTS = ("latency", "throughput")
VIRTUAL_DEVICES = ("AUTO", "MULTI", "HETERO", "BATCH")

_OV_DTYPE: dict[str, str] = {
    "f32": "float32",
    "f16": "float16",
    "bf16": "bfloat16",
    "f64": "float64",
    "i64": "int64",
    "i32": "int32",
    "i16": "int16",
    "i8": "int8",
    "u8": "uint8",
    "u16": "uint16",
    "u32": "uint32",
    "u64": "uint64",
    "boolean": "bool",
}


def normalize_precision(precision: str) -> str:
    p = PRECISION_ALIASES.get(str(precision).lower())
    if p is None:
        raise UsageError(
            f"unknown OpenVINO inference precision {precision!r}",
            hint="choose f32, bf16 or f16 (INT8 comes from a quantized model, not from this option)",
        )
    return p


class OpenVINORunner(Runner):
    """Run an ONNX or OpenVINO IR model with OpenVINO."""

    name = "openvino"
    runtime_timer = "OpenVINO InferRequest.latency (infer() timed inside the runtime; benchmark_app's latency)"

    def __init__(
        self,
        model_path: str | Path,
        *,
        device: str = "CPU",
        precision: str = "f32",
        hint: str = "latency",
        streams: int | None = None,
        threads: int | None = None,
        cache_dir: str | Path | None = None,
        batch: int | None = None,
    ) -> None:
        super().__init__(model_path)
        suffix = self.model_path.suffix.lower()
        if suffix not in (".onnx", ".xml"):
            raise UsageError(
                f"OpenVINO runner reads .onnx or IR .xml files, got {self.model_path.name}",
                hint="give model.onnx or model.xml (with model.bin beside it)",
            )
        if suffix == ".xml" and not self.model_path.with_suffix(".bin").is_file():
            raise ArtifactError(f"IR {self.model_path} has no {self.model_path.with_suffix('.bin').name} beside it")
        self._ov = require("openvino", purpose="running models with OpenVINO")
        self.precision = normalize_precision(precision)
        if hint not in HINTS:
            raise UsageError(f"unknown performance hint {hint!r}", hint=f"choose one of {', '.join(HINTS)}")
        for label, v in (("streams", streams), ("threads", threads), ("batch", batch)):
            if v is not None and (not isinstance(v, int) or isinstance(v, bool) or v < 1):
                raise UsageError(f"{label} must be a positive integer, got {v!r}")
        self.device = device
        self.hint = hint
        self.streams = streams
        self.threads = threads
        self.cache_dir = Path(cache_dir) if cache_dir is not None else None
        self.batch = batch
        self._core: Any = None
        self._compiled: Any = None
        self._request: Any = None
        self._graph: GraphInfo | None = None
        self._inputs: tuple[TensorSpec, ...] = ()
        self._outputs: tuple[TensorSpec, ...] = ()
        self._out_ports: list[Any] = []
        self._details: dict[str, Any] = {}
        self._read_precision: str = self.precision

    # -- device checks ---------------------------------------------------
    def _check_device(self, core: Any) -> None:
        available = list(core.available_devices)
        base = self.device.split(":")[0].split(".")[0].upper()
        if base in VIRTUAL_DEVICES:
            return
        if self.device in available or any(a.split(".")[0] == self.device for a in available):
            return
        raise UsageError(
            f"OpenVINO device {self.device!r} is not available on this machine",
            hint=f"available: {', '.join(available) or 'none'} (and AUTO); a GPU needs the Intel GPU driver (OpenCL)",
        )

    def _advertised_precisions(self, core: Any) -> tuple[list[str], list[str]]:
        """(capabilities as reported, the f32/bf16/f16 precisions they advertise)."""
        props = self._ov.properties
        try:
            caps = [str(c) for c in core.get_property(self.device, props.device.capabilities)]
        except RuntimeError as e:  # a device (or virtual device) that does not report capabilities
            log.info("OpenVINO %s does not report OPTIMIZATION_CAPABILITIES: %s", self.device, e)
            return [], []
        advertised = [CAPABILITY_PRECISION[c] for c in caps if c in CAPABILITY_PRECISION]
        if self.device.upper().startswith("CPU") and "f32" not in advertised:
            advertised.insert(0, "f32")
        return caps, advertised

    def _probe_precisions(self, core: Any) -> list[str]:
        """The precisions the device really runs: compile a one-MatMul model with each and read back."""
        ov = self._ov
        ops = ov.opset13
        param = ops.parameter([1, 8], ov.Type.f32, name="x")
        weight = ops.constant(np.ones((8, 8), dtype=np.float32))
        tiny = ov.Model([ops.matmul(param, weight, False, False)], [param], "edgekit_precision_probe")
        found: list[str] = []
        for p in ("f32", "bf16", "f16"):
            cfg = {ov.properties.hint.inference_precision: getattr(ov.Type, p)}
            try:
                got = core.compile_model(tiny, self.device, cfg).get_property(ov.properties.hint.inference_precision)
            except RuntimeError as e:  # the device refuses the precision outright
                log.info("OpenVINO %s refuses %s: %s", self.device, p, e)
                continue
            if got.get_type_name() == p:
                found.append(p)
        return found

    # -- lifecycle -------------------------------------------------------
    def _config(self) -> dict[Any, Any]:
        ov = self._ov
        props, hints = ov.properties, ov.properties.hint
        cfg: dict[Any, Any] = {
            hints.inference_precision: getattr(ov.Type, self.precision),
            hints.performance_mode: (
                hints.PerformanceMode.LATENCY if self.hint == "latency" else hints.PerformanceMode.THROUGHPUT
            ),
        }
        if self.streams is not None:
            cfg[props.streams.num] = self.streams
        if self.threads is not None:
            cfg[props.inference_num_threads] = self.threads
        if self.cache_dir is not None:
            self.cache_dir.mkdir(parents=True, exist_ok=True)
            cfg[props.cache_dir] = str(self.cache_dir)
        return cfg

    def _reshape(self, model: Any) -> None:
        if self.batch is None:
            return
        ov = self._ov
        new: dict[Any, Any] = {}
        for port in model.inputs:
            ps = port.get_partial_shape()
            if ps.rank.is_dynamic or len(ps) == 0:
                raise UsageError(f"cannot set batch={self.batch}: input {port.get_any_name()!r} has no batch dimension")
            dims = [ps[i] for i in range(len(ps))]
            if dims[0].is_static and dims[0].get_length() == self.batch:
                continue
            dims[0] = ov.Dimension(self.batch)
            new[port] = ov.PartialShape(dims)
        if new:
            try:
                model.reshape(new)
            except RuntimeError as e:
                raise UsageError(
                    f"OpenVINO cannot reshape {self.model_path.name} to batch {self.batch}: {' '.join(str(e).split())[:300]}",
                    hint="export the model with a dynamic batch axis, or use its own batch size",
                ) from None

    def _activate_impl(self) -> None:
        ov = self._ov
        core = ov.Core()
        self._check_device(core)
        caps, advertised = self._advertised_precisions(core)
        if self.model_path.suffix.lower() == ".onnx":
            self._graph = read_graph_info(self.model_path)
        try:
            model = core.read_model(str(self.model_path))
        except RuntimeError as e:
            raise ArtifactError(
                f"OpenVINO cannot read {self.model_path}: {' '.join(str(e).split())[:400]}"
            ) from None
        self._reshape(model)
        try:
            compiled = core.compile_model(model, self.device, self._config())
        except RuntimeError as e:
            raise UsageError(
                f"OpenVINO cannot compile {self.model_path.name} for {self.device}: {' '.join(str(e).split())[:400]}"
            ) from None
        details = self._read_back(compiled)
        read = details.get("inference_precision")
        if read is not None and read != self.precision:
            supported = self._probe_precisions(core) or sorted(set(advertised) | {read})
            raise UsageError(
                f"OpenVINO {self.device} does not run inference precision {self.precision}: "
                f"the compiled model reports {read}",
                hint=f"supported here: {', '.join(supported)} (OPTIMIZATION_CAPABILITIES: {', '.join(caps) or 'not reported'})",
            )
        if advertised and self.precision not in advertised:
            details["precision_note"] = (
                f"{self.precision} is not in the device's OPTIMIZATION_CAPABILITIES ({', '.join(caps)}) "
                "but the compiled model reports it: it is emulated or converted, not native"
            )
            log.warning("OpenVINO %s: %s", self.device, details["precision_note"])
        details["optimization_capabilities"] = caps
        details["precision_requested"] = self.precision
        if read is None:
            details["precision_source"] = f"requested ({self.device} does not report INFERENCE_PRECISION_HINT)"
        else:
            details["precision_source"] = "compiled model"
        self._read_precision = read or self.precision
        details["model_format"] = "onnx" if self._graph is not None else "ir"
        if self._graph is not None:
            details["graph"] = self._graph.to_json()
        if self.batch is not None:
            details["static_batch"] = self.batch
        layers = _runtime_layer_precisions(compiled)
        if layers:
            details["compute_layer_precisions"] = layers
        if self.cache_dir is not None:
            details["cache_dir"] = str(self.cache_dir)
        self._details = details
        self._core, self._compiled = core, compiled
        self._request = compiled.create_infer_request()
        self._inputs = tuple(self._spec(p, i, "input") for i, p in enumerate(compiled.inputs))
        self._outputs = tuple(self._spec(p, i, "output") for i, p in enumerate(compiled.outputs))
        self._out_ports = list(compiled.outputs)

    def _read_back(self, compiled: Any) -> dict[str, Any]:
        """The compiled model's own view of its settings (only properties it supports)."""
        props, hints = self._ov.properties, self._ov.properties.hint
        supported = set(compiled.get_property(props.supported_properties()))
        wanted = {
            "inference_precision": hints.inference_precision,
            "performance_hint": hints.performance_mode,
            "num_streams": props.streams.num,
            "inference_num_threads": props.inference_num_threads,
            "execution_devices": props.execution_devices,
            "optimal_infer_requests": props.optimal_number_of_infer_requests,
        }
        out: dict[str, Any] = {}
        for key, prop in wanted.items():
            pname = prop()
            if pname not in supported:
                continue
            value = compiled.get_property(pname)
            if key == "inference_precision":
                value = value.get_type_name()
            elif key == "performance_hint":
                value = str(value).split(".")[-1].lower()
            elif key == "execution_devices":
                value = [str(v) for v in value]
            else:
                value = int(value) if isinstance(value, int) or str(value).lstrip("-").isdigit() else str(value)
            out[key] = value
        return out

    def _spec(self, port: Any, index: int, kind: str) -> TensorSpec:
        names = sorted(port.get_names())
        onnx_specs = ()
        if self._graph is not None:
            onnx_specs = self._graph.inputs if kind == "input" else self._graph.outputs
        onnx_spec = next((s for s in onnx_specs if s.name in names), None)
        name = onnx_spec.name if onnx_spec is not None else (port.get_any_name() if names else f"{kind}{index}")
        ps = port.get_partial_shape()
        shape: list[int | str] = []
        for i in range(len(ps)):
            d = ps[i]
            if d.is_static:
                shape.append(int(d.get_length()))
            elif onnx_spec is not None and i < len(onnx_spec.shape) and isinstance(onnx_spec.shape[i], str):
                shape.append(onnx_spec.shape[i])
            else:
                shape.append(f"?{i}")
        et = port.get_element_type().get_type_name()
        return TensorSpec(name=name, shape=tuple(shape), dtype=_OV_DTYPE.get(et, et))

    def _deactivate_impl(self) -> None:
        self._request = None
        self._compiled = None
        self._core = None

    # -- protocol --------------------------------------------------------
    def _inputs_impl(self) -> tuple[TensorSpec, ...]:
        return self._inputs

    def _outputs_impl(self) -> tuple[TensorSpec, ...]:
        return self._outputs

    def _info_impl(self) -> RunnerInfo:
        float_precision = EDGEKIT_PRECISION.get(self._read_precision, self._read_precision)
        details = dict(self._details)
        precision = float_precision
        layers = details.get("compute_layer_precisions")
        quantized = (any(p in _INT8_TYPES for p in layers) if layers is not None
                     else self._graph is not None and self._graph.is_quantized)
        if quantized:
            # what the compiled model says it executes: int8 layers in int8, the rest in the float precision
            precision = "int8" if float_precision == "fp32" else f"int8+{float_precision}"
            details["float_precision"] = float_precision
        threads = details.get("inference_num_threads")
        return RunnerInfo(
            runtime=self.name,
            runtime_version=str(self._ov.get_version()),
            device=self.device,
            precision=precision,
            threads=threads if isinstance(threads, int) else None,
            details=details,
        )

    def _last_runtime_ns_impl(self) -> int | None:
        ms = float(self._request.latency) if self._request is not None else 0.0
        return int(round(ms * 1e6)) if ms > 0 else None

    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        # zero-copy in and out of the request (the feeds live until infer returns; the outputs are copied once,
        # since the request reuses its output tensors): what benchmark_app's preallocated tensors cost
        results = self._request.infer({name: np.ascontiguousarray(a) for name, a in feeds.items()},
                                      share_inputs=True, share_outputs=True)
        return {spec.name: np.array(results[port], copy=True) for spec, port in zip(self._outputs, self._out_ports)}


_COMPUTE_LAYERS = ("Convolution", "GroupConvolution", "FullyConnected", "MatMul", "Deconvolution")
_INT8_TYPES = ("u8", "i8")


def _runtime_layer_precisions(compiled: Any) -> dict[str, int]:
    """How many compute layers the compiled model executes in each precision (its runtime model's
    ``runtimePrecision``), e.g. ``{"u8": 34, "f32": 20}``; empty when the device does not say."""
    try:
        ops = compiled.get_runtime_model().get_ordered_ops()
    except (RuntimeError, AttributeError):
        return {}
    counts: dict[str, int] = {}
    for op in ops:
        info = op.get_rt_info()
        if "layerType" not in info or "runtimePrecision" not in info:
            continue
        if info["layerType"].astype(str) in _COMPUTE_LAYERS:
            prec = info["runtimePrecision"].astype(str)
            counts[prec] = counts.get(prec, 0) + 1
    return counts
