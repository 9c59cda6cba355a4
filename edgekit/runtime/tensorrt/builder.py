"""Build TensorRT engines from ONNX (TensorRT 8.6 = JetPack 6.0, 10.x = JetPack 6.1+, and TensorRT 11).

Precision follows the rules of the TensorRT version at hand:

* ``fp32``: TF32 is turned off, so fp32 means fp32.
* ``fp16``: ``BuilderFlag.FP16`` where it exists (TensorRT 10). TensorRT 11
  removed it; there FP16 comes only from an FP16 (strongly typed) ONNX.
* ``int8``: only from an ONNX with Q/DQ nodes (explicit quantization; implicit
  calibration is deprecated since 10.1 and gone in 11). TensorRT 8.6/10 get
  ``BuilderFlag.INT8`` plus, by default, ``FP16`` for the layers outside Q/DQ
  (``int8_float="fp16"``: what ``trtexec --int8 --fp16`` builds and what users
  compare against; ``int8_float="fp32"`` keeps them FP32); the engine is
  labelled ``int8+fp16`` / ``int8+fp32``. TensorRT 11 networks are strongly
  typed: INT8 where the Q/DQ nodes say, the rest in the ONNX's types.
* TensorRT 8.x networks are created with ``EXPLICIT_BATCH`` (0 is an implicit-
  batch network there, which the ONNX parser rejects); 10+ ignores the flag.
* DLA: before building, every layer is asked ``config.can_run_on_DLA``; a build
  where none runs on DLA is refused, one with GPU layers needs ``gpu_fallback``
  and records which layers run on the GPU (the runner labels it ``dla:N+gpu``).

Everything that can be checked without TensorRT (precision, Q/DQ presence,
shapes against the ONNX inputs, DLA constraints) is checked before it is
imported, so a bad request fails the same way on a laptop and on a Jetson.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from edgekit.core.atomic import atomic_write_bytes, sha256_file
from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.specs import TensorSpec
from edgekit.runtime.onnx_info import GraphInfo, read_graph_info
from edgekit.runtime.tensorrt import BACKEND
from edgekit.runtime.tensorrt.engine_key import EngineKey, Shapes, normalize_shapes, write_engine

log = logging.getLogger(__name__)

INT8_FLOATS = ("fp16", "fp32")
ShapeArg = Mapping[str, Sequence[Sequence[int]]]


def validate_build_request(
    onnx_path: Path,
    *,
    precision: str,
    shapes: ShapeArg | None,
    workspace_mb: int,
    builder_optimization_level: int,
    dla_core: int | None,
    gpu_fallback: bool,
    int8_float: str = "fp16",
) -> tuple[GraphInfo, Shapes]:
    """Check a build request against the ONNX graph, without TensorRT."""
    if precision not in BACKEND.build_precisions:  # the one list: the backend record's
        raise UsageError(f"unknown TensorRT precision {precision!r}",
                         hint=f"choose one of {', '.join(BACKEND.build_precisions)}")
    if int8_float not in INT8_FLOATS:
        raise UsageError(f"int8_float must be one of {', '.join(INT8_FLOATS)}, got {int8_float!r}")
    if not isinstance(workspace_mb, int) or workspace_mb < 1:
        raise UsageError(f"workspace_mb must be a positive integer, got {workspace_mb!r}")
    if not isinstance(builder_optimization_level, int) or not 0 <= builder_optimization_level <= 5:
        raise UsageError(f"builder_optimization_level must be 0..5, got {builder_optimization_level!r}")
    graph = read_graph_info(onnx_path)
    if precision == "int8":
        if graph.qoperator_nodes and not graph.qdq_nodes:
            raise UsageError(
                f"{onnx_path.name} is quantized in the QOperator format (QLinearConv, ...), which TensorRT does not run",
                hint="quantize it in Q/DQ format: edgekit quantize --for tensorrt",
            )
        if not graph.qdq_nodes:
            raise UsageError(
                f"{onnx_path.name} has no QuantizeLinear/DequantizeLinear nodes: TensorRT INT8 comes only from an "
                "explicitly quantized (Q/DQ) ONNX; implicit calibration is deprecated since TensorRT 10.1 and removed in 11",
                hint="run 'edgekit quantize --for tensorrt' and build from the model it writes",
            )
    norm = _check_shapes(graph.inputs, shapes)
    if dla_core is not None:
        if not isinstance(dla_core, int) or dla_core < 0:
            raise UsageError(f"dla_core must be a non-negative integer, got {dla_core!r}")
        if precision == "fp32":
            raise UsageError("DLA runs FP16 and INT8 only, not fp32", hint="build with precision='fp16' or 'int8'")
        dynamic = [n for n, lo, opt, hi in norm if not lo == opt == hi]
        if dynamic:
            raise UsageError(
                f"DLA does not support dynamic shapes: {', '.join(dynamic)} have min != max",
                hint="give min = opt = max, or export with a static batch",
            )
    elif gpu_fallback:
        raise UsageError("gpu_fallback only applies to a DLA build", hint="give dla_core too, or drop gpu_fallback")
    return graph, norm


def _check_shapes(inputs: tuple[TensorSpec, ...], shapes: ShapeArg | None) -> Shapes:
    specs = {s.name: s for s in inputs}
    given = dict(shapes or {})
    unknown = sorted(set(given) - set(specs))
    if unknown:
        raise UsageError(f"shapes names inputs {unknown} the ONNX does not have", hint=f"its inputs: {sorted(specs)}")
    for name, spec in specs.items():
        if spec.is_dynamic and name not in given:
            raise UsageError(
                f"input {name!r} has dynamic shape {spec.shape}: give its (min, opt, max) shapes",
                hint=f"e.g. shapes={{'{name}': ((1, ...), (1, ...), (8, ...))}} with the dynamic dims filled in",
            )
    norm = normalize_shapes({k: tuple(v) for k, v in given.items()}) if given else ()
    for name, lo, opt, hi in norm:
        spec = specs[name]
        for label, s in (("min", lo), ("opt", opt), ("max", hi)):
            if len(s) != len(spec.shape):
                raise UsageError(f"shapes[{name!r}] {label} {s} has rank {len(s)}, the input has shape {spec.shape}")
            for d, want in zip(s, spec.shape):
                if d < 1 or (isinstance(want, int) and want >= 0 and d != want):
                    raise UsageError(f"shapes[{name!r}] {label} {s} does not fit the input's shape {spec.shape}")
        if not all(a <= b <= c for a, b, c in zip(lo, opt, hi)):
            raise UsageError(f"shapes[{name!r}] must satisfy min <= opt <= max per dimension, got {lo}, {opt}, {hi}")
    return norm


def _has_flag(trt: Any, name: str) -> bool:
    return hasattr(trt.BuilderFlag, name)


def dla_placement(network: Any, config: Any, *, onnx_name: str, gpu_fallback: bool) -> dict[str, Any]:
    """Which layers of ``network`` DLA can run (``config.can_run_on_DLA``), refused when none or (without
    GPU fallback) not all; the split is what TensorRT logs as "Layers Running on DLA / GPU" when it builds."""
    layers = [network.get_layer(i) for i in range(network.num_layers)]
    on_gpu = [layer.name for layer in layers if not config.can_run_on_DLA(layer)]
    n_dla = len(layers) - len(on_gpu)
    if layers and n_dla == 0:
        raise UsageError(f"no layer of {onnx_name} runs on DLA ({len(layers)} layers, all GPU-only)",
                         hint="build for the GPU instead (drop the DLA runtime)")
    if on_gpu and not gpu_fallback:
        raise UsageError(f"{', '.join(on_gpu[:8])} cannot run on DLA ({len(on_gpu)} of {len(layers)} layers)",
                         hint="allow GPU fallback (gpu_fallback=True), or build for the GPU")
    return {"dla_layers": n_dla, "gpu_layers": len(on_gpu), "on_gpu": on_gpu}


def build_engine(
    onnx_path: str | Path,
    *,
    precision: str = "fp32",
    workspace_mb: int = 1024,
    timing_cache: str | Path | None = None,
    shapes: ShapeArg | None = None,
    builder_optimization_level: int = 3,
    dla_core: int | None = None,
    gpu_fallback: bool = False,
    hardware_compatible: bool = False,
    version_compatible: bool = False,
    int8_float: str = "fp16",
    device: int = 0,
    _report: dict[str, Any] | None = None,
) -> bytes:
    """Build a serialized TensorRT engine from ``onnx_path`` and return its bytes.

    ``shapes`` is ``{input: (min, opt, max)}`` and is required for dynamic
    inputs. ``timing_cache`` is loaded if it exists and saved (atomically)
    after the build: with a pinned timing cache, builds are reproducible.
    ``device`` is made current before the builder exists (the builder builds
    for the current CUDA device).
    """
    onnx_path = Path(onnx_path)
    graph, norm = validate_build_request(
        onnx_path,
        precision=precision,
        shapes=shapes,
        workspace_mb=workspace_mb,
        builder_optimization_level=builder_optimization_level,
        dla_core=dla_core,
        gpu_fallback=gpu_fallback,
        int8_float=int8_float,
    )
    from edgekit.runtime.tensorrt import cuda as _cuda
    from edgekit.runtime.tensorrt import env as _env

    trt = _env.import_tensorrt()
    _cuda.load_cuda(trt).set_device(device)  # DeviceError naming the fix when the driver does not fit
    logger = _env.tensorrt_logger(trt)
    builder = trt.Builder(logger)
    flags_set: list[str] = []
    # TensorRT 11 is strongly typed always; 10 is strongly typed only on request.
    has_fp16_flag = _has_flag(trt, "FP16")
    strongly_typed = not has_fp16_flag
    if precision == "fp16" and not has_fp16_flag and graph.precision != "fp16":
        raise UsageError(
            f"TensorRT {trt.__version__} has no FP16 builder flag: FP16 comes from an FP16 (strongly typed) ONNX, "
            f"and {onnx_path.name} is {graph.precision}",
            hint="convert the ONNX to FP16 first (e.g. ModelOpt AutoCast), or build fp32 / int8 (Q/DQ)",
        )
    net_flags = 0
    if _env.tensorrt_version(trt)[0] < 10:  # 8.x: flags 0 is an implicit-batch network; the ONNX parser asserts
        net_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    if strongly_typed and hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED"):
        net_flags |= 1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED)
    network = builder.create_network(net_flags)
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errs = [str(parser.get_error(i)) for i in range(parser.num_errors)] or logger.errors
        raise ArtifactError(f"TensorRT {trt.__version__} cannot parse {onnx_path.name}: {' | '.join(errs)[:600]}")

    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    config.builder_optimization_level = builder_optimization_level
    placement: dict[str, Any] | None = None
    if _has_flag(trt, "TF32"):
        config.clear_flag(trt.BuilderFlag.TF32)  # on by default: fp32 layers would silently run TF32
    if not strongly_typed:
        if precision == "fp16":
            config.set_flag(trt.BuilderFlag.FP16)
            flags_set.append("FP16")
        elif precision == "int8":
            config.set_flag(trt.BuilderFlag.INT8)  # explicit quantization: INT8 exactly where Q/DQ nodes are
            flags_set.append("INT8")
            if int8_float == "fp16":  # the float parts (SE, classifier) may run FP16: trtexec --int8 --fp16
                config.set_flag(trt.BuilderFlag.FP16)
                flags_set.append("FP16")
    if dla_core is not None:
        if dla_core >= builder.num_DLA_cores:
            raise UsageError(f"this device has {builder.num_DLA_cores} DLA core(s); dla_core={dla_core} does not exist")
        config.default_device_type = trt.DeviceType.DLA
        config.DLA_core = dla_core
        placement = dla_placement(network, config, onnx_name=onnx_path.name, gpu_fallback=gpu_fallback)
        if gpu_fallback:
            config.set_flag(trt.BuilderFlag.GPU_FALLBACK)  # the layers dla_placement listed run on the GPU
            flags_set.append("GPU_FALLBACK")
    if hardware_compatible:
        config.hardware_compatibility_level = trt.HardwareCompatibilityLevel.AMPERE_PLUS
    if version_compatible:
        config.set_flag(trt.BuilderFlag.VERSION_COMPATIBLE)
        flags_set.append("VERSION_COMPATIBLE")
    if norm:
        profile = builder.create_optimization_profile()
        for name, lo, opt, hi in norm:
            profile.set_shape(name, lo, opt, hi)
        config.add_optimization_profile(profile)

    cache_obj = None
    if timing_cache is not None:
        tc = Path(timing_cache)
        cache_obj = config.create_timing_cache(tc.read_bytes() if tc.is_file() else b"")
        if cache_obj is None or not config.set_timing_cache(cache_obj, False):
            raise ArtifactError(
                f"timing cache {tc} does not fit this device or TensorRT version",
                hint="timing caches are not portable: delete it or give another path",
            )
    log.info("building TensorRT engine from %s (%s, flags %s)", onnx_path.name, precision, flags_set)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ArtifactError(
            f"TensorRT {trt.__version__} failed to build an engine from {onnx_path.name} ({precision}): "
            f"{' | '.join(logger.errors)[:600] or 'see the log'}"
        )
    if timing_cache is not None:
        atomic_write_bytes(Path(timing_cache), bytes(config.get_timing_cache().serialize()))
    if _report is not None:
        _report.update({"strongly_typed": strongly_typed, "builder_flags": flags_set,
                        "tensorrt_version": trt.__version__,
                        "int8_float": int8_float if precision == "int8" and not strongly_typed else None,
                        "dla_placement": placement if dla_core is not None else None})
    return bytes(serialized)


def build_engine_file(
    onnx_path: str | Path,
    engine_path: str | Path,
    *,
    precision: str = "fp32",
    workspace_mb: int = 1024,
    timing_cache: str | Path | None = None,
    shapes: ShapeArg | None = None,
    builder_optimization_level: int = 3,
    dla_core: int | None = None,
    gpu_fallback: bool = False,
    hardware_compatible: bool = False,
    version_compatible: bool = False,
    int8_float: str = "fp16",
    device: int = 0,
) -> EngineKey:
    """Build an engine and write it with its sidecar (engine sha256 + :class:`EngineKey`)."""
    from edgekit.runtime.tensorrt import env as _env

    onnx_path = Path(onnx_path)
    tc_hash = sha256_file(timing_cache) if timing_cache is not None and Path(timing_cache).is_file() else None
    report: dict[str, Any] = {}
    data = build_engine(
        onnx_path,
        precision=precision,
        workspace_mb=workspace_mb,
        timing_cache=timing_cache,
        shapes=shapes,
        builder_optimization_level=builder_optimization_level,
        dla_core=dla_core,
        gpu_fallback=gpu_fallback,
        hardware_compatible=hardware_compatible,
        version_compatible=version_compatible,
        int8_float=int8_float,
        device=device,
        _report=report,
    )
    graph = read_graph_info(onnx_path)
    env = _env.device_environment(_env.import_tensorrt(), device=device)
    env["cudnn_version"] = cudnn_version()  # recorded only: edgekit never enables cuDNN tactics
    key = EngineKey(
        onnx_sha256=sha256_file(onnx_path),
        tensorrt_version=str(report["tensorrt_version"]),
        precision=precision,
        int8_float=report["int8_float"],
        strongly_typed=bool(report["strongly_typed"]),
        shapes=normalize_shapes({k: tuple(v) for k, v in (shapes or {}).items()}),
        builder_optimization_level=builder_optimization_level,
        workspace_mb=workspace_mb,
        dla_core=dla_core,
        gpu_fallback=gpu_fallback,
        hardware_compatible=hardware_compatible,
        version_compatible=version_compatible,
        timing_cache_sha256=tc_hash,
        extra={
            "builder_flags": report["builder_flags"],
            "inputs": [s.to_json() for s in graph.inputs],
            "outputs": [s.to_json() for s in graph.outputs],
            "onnx_file": onnx_path.name,
            "qdq_nodes": graph.qdq_nodes,
            **({"dla_placement": report["dla_placement"]} if report["dla_placement"] else {}),
        },
    ).with_environment(env)
    write_engine(engine_path, data, key)
    return key


def cudnn_version() -> str | None:
    """The cuDNN library version if one can be loaded (recorded at build time only; TensorRT 10 needs none)."""
    import ctypes

    for lib in ("libcudnn.so.9", "libcudnn.so.8", "libcudnn.so"):
        try:
            v = int(ctypes.CDLL(lib).cudnnGetVersion())
        except OSError:
            continue
        major, rest = (v // 10000, v % 10000) if v >= 90000 else (v // 1000, v % 1000)
        return f"{major}.{rest // 100}.{rest % 100}"
    return None
