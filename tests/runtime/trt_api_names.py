"""Which names the real ``tensorrt`` Python module has, per version, and the strictness that enforces them:
:class:`Strict` objects raise ``AttributeError`` for any other public name, read or written, as pybind11 does.

Derived (2026-12-05) from the compiled bindings of the PyPI wheels, read without a GPU:
``pip download --no-deps tensorrt-bindings==8.6.1 tensorrt-cu12-bindings==10.3.0 tensorrt-cu13-bindings==11.4.0.106``,
then ``strings tensorrt_bindings/tensorrt.so`` (pybind11 registers every attribute, method and enum member by its
name). ``tools/trt_api_names.sh`` repeats the extraction and prints which of the names below each wheel has.
A string scan cannot say which class a name belongs to, nor see the removal of one enum member whose name
another enum keeps (``BuilderFlag.INT8`` vs ``DataType.INT8``); those per-class facts come from the headers
the TensorRT audit cites (shared/reference/tensorrt-audit.md: ``NvInfer.h`` 10.3 / 11.1, ``pyCore.cpp``
8.5 / 8.6 / 10.3 / 11.1). Scan results that decide a version difference:

=====================================  =====  ======  ========
name                                   8.6.1  10.3.0  11.4.0
=====================================  =====  ======  ========
FP16 (BuilderFlag)                     yes    yes     no
BF16 (BuilderFlag, DataType)           no     yes     yes
INT64 (DataType)                       no     yes     yes
EXPLICIT_BATCH                         yes    yes     no
STRONGLY_TYPED                         no     yes     yes
REPORT_CAPABILITY_DLA (OnnxParserFlag) no     no      yes
builder_optimization_level             yes    yes     yes   (absent in 8.5: audit, pyCore.cpp release/8.5)
engine_host_code_allowed               yes    yes     yes
hardware_compatibility_level           yes    yes     yes
can_run_on_DLA / get_device_type       yes    yes     yes
get_max_output_size                    yes    yes     yes
=====================================  =====  ======  ========
"""

from __future__ import annotations

_MODULE = {"__version__", "Builder", "OnnxParser", "Runtime", "ILogger", "BuilderFlag", "NetworkDefinitionCreationFlag",
           "MemoryPoolType", "DeviceType", "HardwareCompatibilityLevel", "TensorIOMode", "DataType",
           "ProfilingVerbosity", "LayerInformationFormat", "OnnxParserFlag", "IOutputAllocator"}
_BUILDER = {"create_network", "create_builder_config", "create_optimization_profile", "build_serialized_network",
            "num_DLA_cores"}
_NETWORK = {"num_layers", "get_layer", "has_implicit_batch_dimension", "num_inputs", "num_outputs"}
_LAYER = {"name", "type"}
_CONFIG = {"set_memory_pool_limit", "builder_optimization_level", "set_flag", "clear_flag", "get_flag",
           "default_device_type", "DLA_core", "hardware_compatibility_level", "add_optimization_profile",
           "create_timing_cache", "set_timing_cache", "get_timing_cache", "profiling_verbosity", "can_run_on_DLA",
           "get_device_type"}
_PARSER = {"parse_from_file", "num_errors", "get_error", "set_flag"}
_RUNTIME = {"deserialize_cuda_engine", "DLA_core", "engine_host_code_allowed"}
_ENGINE = {"num_io_tensors", "get_tensor_name", "get_tensor_mode", "get_tensor_shape", "get_tensor_dtype",
           "get_tensor_profile_shape", "create_execution_context", "create_engine_inspector",
           "num_optimization_profiles", "num_layers"}
_INSPECTOR = {"get_layer_information", "get_engine_information"}
_CONTEXT = {"set_input_shape", "get_tensor_shape", "set_tensor_address", "execute_async_v3", "get_max_output_size",
            "set_output_allocator"}
_PROFILE = {"set_shape"}
_TIMING_CACHE = {"serialize"}

_ENUMS_10 = {
    "BuilderFlag": ["FP16", "BF16", "INT8", "TF32", "DEBUG", "GPU_FALLBACK", "VERSION_COMPATIBLE"],
    "NetworkDefinitionCreationFlag": ["EXPLICIT_BATCH", "STRONGLY_TYPED"],
    "MemoryPoolType": ["WORKSPACE"],
    "DeviceType": ["GPU", "DLA"],
    "HardwareCompatibilityLevel": ["NONE", "AMPERE_PLUS"],
    "TensorIOMode": ["NONE", "INPUT", "OUTPUT"],
    "DataType": ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8", "INT64", "BF16"],
    "ProfilingVerbosity": ["LAYER_NAMES_ONLY", "NONE", "DETAILED"],
    "LayerInformationFormat": ["ONELINE", "JSON"],
    "OnnxParserFlag": ["NATIVE_INSTANCENORM"],
}
_ENUMS_8 = {**_ENUMS_10,
            "BuilderFlag": ["FP16", "INT8", "TF32", "DEBUG", "GPU_FALLBACK", "VERSION_COMPATIBLE"],
            "NetworkDefinitionCreationFlag": ["EXPLICIT_BATCH"],
            "DataType": ["FLOAT", "HALF", "INT8", "INT32", "BOOL", "UINT8"]}
_ENUMS_11 = {**_ENUMS_10,
             "BuilderFlag": ["TF32", "DEBUG", "GPU_FALLBACK", "VERSION_COMPATIBLE"],
             "NetworkDefinitionCreationFlag": ["STRONGLY_TYPED"],
             "OnnxParserFlag": ["NATIVE_INSTANCENORM", "REPORT_CAPABILITY_DLA"]}

_COMMON = {"module": _MODULE, "Builder": _BUILDER, "INetworkDefinition": _NETWORK, "ILayer": _LAYER,
           "IBuilderConfig": _CONFIG, "OnnxParser": _PARSER, "Runtime": _RUNTIME, "ICudaEngine": _ENGINE,
           "EngineInspector": _INSPECTOR, "IExecutionContext": _CONTEXT, "IOptimizationProfile": _PROFILE,
           "ITimingCache": _TIMING_CACHE}


def api(version: str) -> tuple[dict[str, frozenset[str]], dict[str, list[str]]]:
    """``(names per class, members per enum)`` of the real module of ``version`` (``"8.5.2"``, ``"10.3.0"``, ...)."""
    major, minor = (int(p) for p in version.split(".")[:2])
    classes = {k: set(v) for k, v in _COMMON.items()}
    if major >= 11:
        enums = _ENUMS_11
    elif major >= 10:
        enums = _ENUMS_10
    else:
        enums = _ENUMS_8
        if (major, minor) < (8, 6):  # pyCore.cpp release/8.5: no optimization level, no version/hardware compat
            classes["IBuilderConfig"] -= {"builder_optimization_level", "hardware_compatibility_level"}
            classes["Runtime"] -= {"engine_host_code_allowed"}
            enums = {**enums, "BuilderFlag": [f for f in enums["BuilderFlag"] if f != "VERSION_COMPATIBLE"]}
    return {k: frozenset(v) for k, v in classes.items()}, enums


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


def enum_type(name: str, members: list[str], version: str) -> type:
    ns = {m: Member(name, m, i) for i, m in enumerate(members)}
    ns["_version"] = version
    return _EnumMeta(name, (), ns)
