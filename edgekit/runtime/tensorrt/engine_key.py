"""The TensorRT engine cache key and the engine's sidecar manifest (no tensorrt import).

TensorRT engines and timing caches are not portable across GPU model, compute
capability, SM count (Orin modules share a name and sm_87), TensorRT, CUDA or
L4T release, and TensorRT itself keeps no cache key. :class:`EngineKey` records everything an engine depends on: the
environment it was built in and the settings it was built with. Its
:meth:`~EngineKey.digest` names a cache entry; :func:`check_engine_compat`
says, field by field, why an engine cannot run on this device.

Every engine file ``model.engine`` has a sidecar ``model.engine.json`` that
holds the engine's sha256 and its key. Deserializing an engine runs native
code, so :func:`read_verified_engine` refuses an engine without a sidecar or
whose bytes do not hash to the recorded sha256.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from edgekit.core.atomic import atomic_write_bytes, atomic_write_json, sha256_bytes
from edgekit.core.errors import ArtifactError

SIDECAR_SCHEMA = "edgekit.tensorrt-engine"
SIDECAR_VERSION = 1
KEY_VERSION = 2  # 2: sm_count, jetson_module, int8_float; cuDNN and the driver recorded only

#: fields that describe the machine an engine was built on (compared on load)
ENV_FIELDS = (
    "tensorrt_version",
    "cuda_version",
    "gpu_name",
    "compute_capability",
    "sm_count",
    "jetson_module",
    "l4t_release",
    "jetpack_version",
)
#: recorded in the key and the sidecar, not compared and not part of the digest
RECORDED_FIELDS = ("jetson_model", "cuda_driver", "cudnn_version")
#: fields that describe how an engine was built (compared when looking up a cache)
BUILD_FIELDS = (
    "onnx_sha256",
    "precision",
    "int8_float",
    "strongly_typed",
    "shapes",
    "builder_optimization_level",
    "workspace_mb",
    "dla_core",
    "gpu_fallback",
    "hardware_compatible",
    "version_compatible",
    "timing_cache_sha256",
)
_LABELS = {
    "tensorrt_version": "TensorRT",
    "cuda_version": "CUDA",
    "cudnn_version": "cuDNN",
    "gpu_name": "GPU",
    "compute_capability": "compute capability",
    "sm_count": "SMs",
    "jetson_module": "Jetson module",
    "l4t_release": "L4T",
    "jetpack_version": "JetPack",
    "onnx_sha256": "ONNX sha256",
    "precision": "precision",
    "int8_float": "INT8 float parts",
    "strongly_typed": "strongly typed",
    "shapes": "input shapes (min/opt/max)",
    "builder_optimization_level": "builder optimization level",
    "workspace_mb": "workspace MiB",
    "dla_core": "DLA core",
    "gpu_fallback": "GPU fallback",
    "hardware_compatible": "hardware compatibility",
    "version_compatible": "version compatibility",
    "timing_cache_sha256": "timing cache sha256",
}

Shapes = tuple[tuple[str, tuple[int, ...], tuple[int, ...], tuple[int, ...]], ...]


def normalize_shapes(shapes: dict[str, Any] | Shapes | None) -> Shapes:
    """``{name: (min, opt, max)}`` (or its tuple form) -> a sorted, hashable tuple."""
    if not shapes:
        return ()
    items = shapes.items() if isinstance(shapes, dict) else ((s[0], tuple(s[1:])) for s in shapes)
    out = []
    for name, mom in items:
        if len(mom) != 3:
            raise ArtifactError(f"shapes[{name!r}] must be (min, opt, max), got {mom!r}")
        lo, opt, hi = (tuple(int(d) for d in s) for s in mom)
        out.append((str(name), lo, opt, hi))
    return tuple(sorted(out))


@dataclass(frozen=True)
class EngineKey:
    """Everything a TensorRT engine depends on. ``None`` means not applicable / not present."""

    onnx_sha256: str
    tensorrt_version: str
    precision: str
    cuda_version: str | None = None  # the libcudart TensorRT runs on (compared by major)
    cudnn_version: str | None = None  # recorded: edgekit never enables cuDNN tactics (TensorRT 10 default)
    gpu_name: str | None = None
    compute_capability: str | None = None  # "8.7"
    sm_count: int | None = None  # multiprocessors: AGX Orin 16, Orin NX / Nano 8 (same name, same sm_87)
    jetson_module: str | None = None  # module P-number "p3767-0005", Jetson only
    l4t_release: str | None = None  # "36.4.0", Jetson only
    jetpack_version: str | None = None  # Jetson only; compared when both sides know it
    jetson_model: str | None = None  # /proc/device-tree/model, recorded (not compared)
    cuda_driver: str | None = None  # CUDA version the driver supports, recorded (not compared)
    int8_float: str | None = None  # int8 engines: "fp16" (trtexec --int8 --fp16) or "fp32" float parts
    strongly_typed: bool = False
    shapes: Shapes = ()
    builder_optimization_level: int = 3
    workspace_mb: int = 1024
    dla_core: int | None = None
    gpu_fallback: bool = False
    hardware_compatible: bool = False
    version_compatible: bool = False
    timing_cache_sha256: str | None = None
    extra: dict[str, Any] = field(default_factory=dict, compare=False, hash=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "shapes", normalize_shapes(self.shapes))

    # -- identity --------------------------------------------------------
    def canonical(self) -> dict[str, Any]:
        """The fields that identify an engine, JSON-ready (``extra`` is not part of it)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("extra", *RECORDED_FIELDS)}
        d["shapes"] = {n: [list(lo), list(opt), list(hi)] for n, lo, opt, hi in self.shapes}
        d["key_version"] = KEY_VERSION
        return d

    def digest(self) -> str:
        """sha256 of the canonical JSON: stable across Python versions and dict order."""
        text = json.dumps(self.canonical(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    @property
    def sm(self) -> str | None:
        return f"sm_{self.compute_capability.replace('.', '')}" if self.compute_capability else None

    @property
    def precision_label(self) -> str:
        """``int8+fp16`` for an INT8 engine whose float parts may run FP16, else the precision."""
        return f"{self.precision}+{self.int8_float}" if self.precision == "int8" and self.int8_float else self.precision

    def describe(self) -> str:
        """``TensorRT 10.3.0, CUDA 12.6 on Orin (sm_87, 8 SMs), L4T 36.4.0``."""
        parts = [f"TensorRT {self.tensorrt_version}"]
        if self.cuda_version:
            parts.append(f"CUDA {self.cuda_version}")
        where = self.gpu_name or "an unknown GPU"
        if self.sm:
            where += f" ({self.sm}{f', {self.sm_count} SMs' if self.sm_count else ''})"
        if self.jetson_module:
            where += f" module {self.jetson_module}"
        text = ", ".join(parts) + f" on {where}"
        if self.l4t_release:
            text += f", L4T {self.l4t_release}"
        return text

    def with_environment(self, env: dict[str, Any]) -> EngineKey:
        """This key's build settings on another environment (the device's)."""
        allowed = set(ENV_FIELDS) | set(RECORDED_FIELDS)
        return replace(self, **{k: v for k, v in env.items() if k in allowed})

    # -- json ------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        d = self.canonical()
        d.update({k: getattr(self, k) for k in RECORDED_FIELDS})
        d["extra"] = dict(self.extra)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> EngineKey:
        try:
            kv = int(d.get("key_version", KEY_VERSION))
            if kv < KEY_VERSION:
                raise ArtifactError(
                    f"engine key version {kv} predates this edgekit ({KEY_VERSION}: it also records the SM count, "
                    "the Jetson module and the CUDA TensorRT runs on)",
                    hint="rebuild the engine on this device with 'edgekit build'",
                )
            if kv > KEY_VERSION:
                raise ArtifactError(
                    f"engine key version {kv} is newer than this edgekit understands ({KEY_VERSION})",
                    hint="upgrade edgekit",
                )
            names = {f.name for f in fields(cls)}
            kwargs = {k: v for k, v in d.items() if k in names}
            kwargs["shapes"] = {n: tuple(v) for n, v in (d.get("shapes") or {}).items()}
            return cls(**kwargs)
        except (TypeError, ValueError) as e:
            raise ArtifactError(f"engine key is malformed: {type(e).__name__}: {e}") from None


# -- compatibility -----------------------------------------------------------
def _version_tuple(v: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", v)[:3])


def _version_compat_ok(built: str, device: str) -> bool:
    """VERSION_COMPATIBLE engines run on newer runtimes of the same major (and 8->10, 10->11)."""
    b, d = _version_tuple(built), _version_tuple(device)
    if not b or not d or d < b:
        return False
    return d[0] == b[0] or (b[0], d[0]) in ((8, 10), (10, 11))


def _major(v: str | None) -> int | None:
    t = _version_tuple(v) if v else ()
    return t[0] if t else None


def _cc_tuple(cc: str | None) -> tuple[int, ...]:
    return _version_tuple(cc) if cc else ()


def engine_mismatches(recorded: EngineKey, device: EngineKey) -> list[tuple[str, Any, Any]]:
    """``(field, recorded, device)`` for every field that makes ``recorded`` unusable on ``device``."""
    out: list[tuple[str, Any, Any]] = []
    for name in ENV_FIELDS + BUILD_FIELDS:
        a, b = getattr(recorded, name), getattr(device, name)
        if a == b:
            continue
        if name == "cuda_version" and a and b and _major(a) == _major(b):
            continue  # CUDA minor-version compatibility: same major, same TensorRT build
        if name == "jetpack_version" and (a is None or b is None):
            continue  # the nvidia-jetpack package installed later; L4T already names the BSP
        if name == "tensorrt_version" and recorded.version_compatible and _version_compat_ok(a, b):
            continue
        if name in ("gpu_name", "compute_capability", "sm_count", "jetson_module") and recorded.hardware_compatible:
            if _cc_tuple(device.compute_capability) >= (8, 0):  # AMPERE_PLUS
                continue
        out.append((name, a, b))
    return out


def check_engine_compat(recorded: EngineKey, device: EngineKey, *, engine: str | Path | None = None) -> None:
    """Raise :class:`ArtifactError` naming each field where the engine does not fit the device."""
    diffs = engine_mismatches(recorded, device)
    if not diffs:
        return
    what = f"engine {Path(engine).name}" if engine is not None else "engine"
    details = "; ".join(
        f"{_LABELS.get(n, n)}: engine {_fmt(n, a)}, device {_fmt(n, b)}" for n, a, b in diffs
    )
    raise ArtifactError(
        f"{what} was built for {recorded.describe()}; this device has {device.describe()} ({details})",
        hint="TensorRT engines only run where they were built: rebuild it on this device with 'edgekit build'",
    )


def _fmt(name: str, v: Any) -> str:
    if v is None:
        return "none"
    if name == "compute_capability":
        return f"{v} (sm_{str(v).replace('.', '')})"
    if name.endswith("sha256") and isinstance(v, str):
        return v[:12]
    if name == "shapes":
        return ",".join(f"{n}:{list(lo)}/{list(o)}/{list(hi)}" for n, lo, o, hi in v) or "static"
    return str(v)


# -- sidecar -----------------------------------------------------------------
def sidecar_path(engine_path: str | Path) -> Path:
    p = Path(engine_path)
    return p.with_name(p.name + ".json")


def write_engine(engine_path: str | Path, data: bytes, key: EngineKey) -> Path:
    """Write the engine, then its sidecar (last, so a partial write has no sidecar)."""
    p = Path(engine_path)
    atomic_write_bytes(p, data)
    atomic_write_json(
        sidecar_path(p),
        {
            "schema": SIDECAR_SCHEMA,
            "schema_version": SIDECAR_VERSION,
            "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
            "engine_file": p.name,
            "engine_sha256": sha256_bytes(data),
            "engine_bytes": len(data),
            "key_digest": key.digest(),
            "key": key.to_json(),
        },
    )
    return p


def read_sidecar(engine_path: str | Path) -> tuple[EngineKey, str]:
    """``(key, engine sha256)`` recorded beside ``engine_path``."""
    p = Path(engine_path)
    sc = sidecar_path(p)
    if not sc.is_file():
        raise ArtifactError(
            f"engine {p} has no sidecar {sc.name}: its origin and build settings are unknown",
            hint="only engines built by 'edgekit build' are loaded; rebuild it on this device",
        )
    try:
        d = json.loads(sc.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise ArtifactError(f"cannot read {sc}: {e}") from None
    if not isinstance(d, dict) or d.get("schema") != SIDECAR_SCHEMA:
        raise ArtifactError(f"{sc} is not an edgekit engine sidecar")
    if not isinstance(d.get("engine_sha256"), str) or not isinstance(d.get("key"), dict):
        raise ArtifactError(f"{sc} lacks engine_sha256 or key")
    key = EngineKey.from_json(d["key"])
    if d.get("key_digest") not in (None, key.digest()):
        raise ArtifactError(f"{sc}: key_digest does not match its key (the sidecar was edited)")
    return key, d["engine_sha256"]


def read_verified_engine(engine_path: str | Path) -> tuple[bytes, EngineKey]:
    """The engine bytes and key, only if the bytes hash to the sha256 in the sidecar.

    The hash is computed on the very bytes returned (read once), so the file
    cannot change between the check and deserialization.
    """
    p = Path(engine_path)
    if not p.is_file():
        raise ArtifactError(f"engine {p} does not exist", hint="build it with 'edgekit build'")
    key, recorded = read_sidecar(p)
    data = p.read_bytes()
    actual = sha256_bytes(data)
    if actual != recorded:
        raise ArtifactError(
            f"engine {p} has sha256 {actual[:12]}..., its sidecar records {recorded[:12]}...: "
            "refusing to deserialize it (that runs native code)",
            hint="the engine was modified or replaced after it was built; rebuild it with 'edgekit build'",
        )
    return data, key
