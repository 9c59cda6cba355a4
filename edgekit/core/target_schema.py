"""The target-profile schema: frozen dataclasses and the validator of a parsed TOML/JSON dict.

:mod:`edgekit.core.targets` loads the files; this module says what a valid
profile is. Every error names the origin file and the field path
(``targets/foo.toml: runtimes[1].precisions: 'int4' is not one of fp32, fp16,
bf16, int8``). Unknown keys are errors, so a typo never passes silently.
Standard library only.

Schema (version 1; [] = optional)::

    schema_version = 1
    name, description, family (cpu|intel|jetson|rpi|nvidia-gpu|other)
    [arch = ["x86_64", "aarch64"]]  [notes = ["..."]]
    [detect]        device_tree = ["orin nano"]       # substrings of /proc/device-tree/model
                    module = ["p3767-0005"]           # Jetson module P-numbers (the reliable key)
    [hardware]      cpu, cpu_cores, accelerator, cuda_compute_capability, dla_cores, power_rails
    [memory]        size_gb, type, bandwidth_gbps, source (required with a figure), note
    [peak_compute]  note (required when no values)
    [[peak_compute.values]]  precision, value, unit (TOPS|TFLOPS), sparsity (sparse|dense|unknown), source, [note]
    [defaults]      threads, streams, batch_sizes, power_mode (one of power_modes)
    [bench]         warmup_s, cv_threshold (a fraction)
    [[runtimes]]    runtime, device, precisions, [provider, threads, streams, note]   # preference order
    [[power_modes]] name, [id, watts, verified, source, note]
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NoReturn

from edgekit.core.errors import UsageError
from edgekit.core.specs import Precision

SCHEMA_VERSION = 1
PRECISIONS = tuple(str(p) for p in Precision)
FAMILIES = ("cpu", "intel", "jetson", "rpi", "nvidia-gpu", "other")
ARCHES = ("x86_64", "aarch64")


@dataclass(frozen=True)
class RuntimeRules:
    """What a profile may say about one runtime; each backend registers its own (core names no runtime)."""

    devices: tuple[str, ...]
    providers: Mapping[str, str]  # device -> execution provider, for a runtime that takes one
    device_precisions: Mapping[str, tuple[str, ...]]  # device -> the only precisions it runs there


#: runtime name -> its rules, filled by :mod:`edgekit.runtime.registry` (``import edgekit`` loads it)
RUNTIME_RULES: dict[str, RuntimeRules] = {}


def register_runtime_rules(name: str, rules: RuntimeRules) -> None:
    RUNTIME_RULES[name] = rules


@dataclass(frozen=True)
class RuntimeSpec:
    """One runtime on one device, with the precisions it accepts there."""

    runtime: str
    device: str
    precisions: tuple[str, ...]
    provider: str | None = None  # onnxruntime execution provider
    threads: int | None = None  # None: the target's default (physical cores when that is None too)
    streams: int | None = None
    note: str = ""

    @property
    def key(self) -> str:
        return f"{self.runtime}:{self.device}"

    def supports(self, precision: str) -> bool:
        return str(precision) in self.precisions


@dataclass(frozen=True)
class PeakCompute:
    """A published peak figure. ``sparsity`` is sparse, dense or unknown."""

    precision: str
    value: float
    unit: str  # TOPS or TFLOPS
    sparsity: str
    source: str
    note: str = ""


@dataclass(frozen=True)
class MemorySpec:
    size_gb: float | None = None
    type: str | None = None
    bandwidth_gbps: float | None = None
    source: str | None = None
    note: str = ""


@dataclass(frozen=True)
class HardwareSpec:
    cpu: str | None = None
    cpu_cores: int | None = None
    accelerator: str | None = None
    cuda_compute_capability: str | None = None
    dla_cores: int | None = None
    power_rails: tuple[str, ...] = ()


@dataclass(frozen=True)
class PowerMode:
    """An nvpmodel mode. ``verified`` is False until read from a device's nvpmodel.conf."""

    name: str
    watts: float | None = None
    id: int | None = None
    verified: bool = False
    source: str = ""
    note: str = ""


@dataclass(frozen=True)
class TargetProfile:
    name: str
    description: str
    family: str
    arch: tuple[str, ...]
    runtimes: tuple[RuntimeSpec, ...]
    hardware: HardwareSpec = HardwareSpec()
    memory: MemorySpec = MemorySpec()
    peak_compute: tuple[PeakCompute, ...] = ()
    peak_note: str = ""
    power_modes: tuple[PowerMode, ...] = ()
    default_power_mode: str | None = None
    threads: int | None = None  # None: number of physical cores, resolved and recorded at run time
    streams: int = 1
    batch_sizes: tuple[int, ...] = (1, 2, 4, 8, 16, 32)
    warmup_s: float = 2.0
    cv_threshold: float = 0.10
    notes: tuple[str, ...] = ()
    device_tree_match: tuple[str, ...] = ()
    module_match: tuple[str, ...] = ()  # Jetson module P-numbers ("p3767-0005")
    source: str = ""  # the file it was read from, as shown in messages

    def peak(self, precision: str) -> PeakCompute | None:
        return next((p for p in self.peak_compute if p.precision == str(precision)), None)

    def runtime_for(self, *, runtime: str | None = None, device: str | None = None,
                    precision: str | None = None) -> RuntimeSpec:
        """The first runtime in preference order that matches every given filter."""
        for r in self.runtimes:
            if runtime is not None and r.runtime != runtime:
                continue
            if device is not None and r.device.lower() != device.lower():
                continue
            if precision is not None and not r.supports(precision):
                continue
            return r
        have = ", ".join(f"{r.key} ({'/'.join(r.precisions)})" for r in self.runtimes)
        want = ", ".join(f"{k}={v}" for k, v in (("runtime", runtime), ("device", device),
                                                   ("precision", precision)) if v is not None)
        raise UsageError(f"target {self.name} has no runtime with {want}", hint=f"it has {have}")

    def to_json(self) -> dict[str, Any]:
        """The profile in the TOML schema (round-trips through :func:`parse_target`)."""
        d: dict[str, Any] = {
            "schema_version": SCHEMA_VERSION, "name": self.name, "description": self.description,
            "family": self.family, "arch": list(self.arch), "notes": list(self.notes),
            "detect": {"device_tree": list(self.device_tree_match), "module": list(self.module_match)},
            "hardware": _drop_none(self.hardware.__dict__ | {"power_rails": list(self.hardware.power_rails)}),
            "memory": _drop_none(self.memory.__dict__),
            "peak_compute": {"note": self.peak_note, "values": [_drop_none(p.__dict__) for p in self.peak_compute]},
            "defaults": _drop_none({"threads": self.threads, "streams": self.streams,
                                    "batch_sizes": list(self.batch_sizes), "power_mode": self.default_power_mode}),
            "bench": {"warmup_s": self.warmup_s, "cv_threshold": self.cv_threshold},
            "runtimes": [_drop_none(r.__dict__ | {"precisions": list(r.precisions)}) for r in self.runtimes],
            "power_modes": [_drop_none(m.__dict__) for m in self.power_modes],
        }
        if self.source:
            d["source_file"] = self.source
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any], *, origin: str = "<json>") -> TargetProfile:
        return parse_target(d, origin=origin)


def _drop_none(d: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in d.items() if v is not None and v != ""}


# -- validation ---------------------------------------------------------------

_TYPE_NAMES = {int: "an integer", str: "a string", list: "a list", bool: "true or false", dict: "a table"}


class _Table:
    """Typed access to one TOML table; errors name the origin and the field path."""

    def __init__(self, data: Any, origin: str, path: str) -> None:
        self.origin, self.path = origin, path
        if not isinstance(data, dict):
            self.fail(f"must be a table, got {type(data).__name__}")
        self.data: dict[str, Any] = data

    def field(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def fail(self, msg: str, key: str | None = None) -> NoReturn:
        where = self.field(key) if key is not None else (self.path or "(top level)")
        raise UsageError(f"{self.origin}: {where}: {msg}")

    def only(self, *allowed: str) -> None:
        for k in self.data:
            if k not in allowed:
                self.fail(f"unknown key {k!r}; allowed: {', '.join(allowed)}", None)

    def get(self, key: str, typ: type | tuple[type, ...], *, required: bool = False, default: Any = None) -> Any:
        if key not in self.data:
            if required:
                self.fail("is required", key)
            return default
        v = self.data[key]
        types = typ if isinstance(typ, tuple) else (typ,)
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            names = "a number" if float in types else " or ".join(_TYPE_NAMES.get(x, x.__name__) for x in types)
            self.fail(f"must be {names}, got {v!r}", key)
        return float(v) if float in types else v

    def text(self, key: str, *, required: bool = False) -> str | None:
        v = self.get(key, str, required=required)
        if required and not v.strip():
            self.fail("must not be empty", key)
        return v

    def positive(self, key: str, typ: type = int, *, allow_zero: bool = False) -> Any:
        v = self.get(key, (int, float) if typ is float else int)
        if v is not None and (v < 0 or (v == 0 and not allow_zero)):
            self.fail(f"must be {'>= 0' if allow_zero else '> 0'}, got {v!r}", key)
        return v

    def strings(self, key: str, *, choices: tuple[str, ...] | None = None, required: bool = False) -> tuple[str, ...]:
        v = self.get(key, list, required=required, default=[])
        for i, s in enumerate(v):
            if not isinstance(s, str):
                self.fail(f"must be a list of strings, item {i} is {s!r}", key)
            if choices is not None and s not in choices:
                self.fail(f"{s!r} is not one of {', '.join(choices)}", key)
        return tuple(v)

    def sub(self, key: str) -> _Table:
        return _Table(self.data.get(key, {}), self.origin, self.field(key))

    def items(self, key: str) -> list[_Table]:
        v = self.get(key, list, default=[])
        return [_Table(x, self.origin, f"{self.field(key)}[{i}]") for i, x in enumerate(v)]


def parse_target(data: dict[str, Any], *, origin: str) -> TargetProfile:
    """Validate a parsed profile (TOML or JSON dict) and build a :class:`TargetProfile`."""
    t = _Table(data, origin, "")
    t.only("schema_version", "name", "description", "family", "arch", "notes", "detect", "hardware",
           "memory", "peak_compute", "defaults", "bench", "runtimes", "power_modes", "source_file")
    version = t.get("schema_version", int, required=True)
    if version != SCHEMA_VERSION:
        t.fail(f"is {version}, this edgekit reads version {SCHEMA_VERSION}", "schema_version")
    name = t.text("name", required=True)
    family = t.text("family", required=True)
    if family not in FAMILIES:
        t.fail(f"{family!r} is not one of {', '.join(FAMILIES)}", "family")

    det = t.sub("detect")
    det.only("device_tree", "module")
    hw = t.sub("hardware")
    hw.only("cpu", "cpu_cores", "accelerator", "cuda_compute_capability", "dla_cores", "power_rails")
    hardware = HardwareSpec(cpu=hw.text("cpu"), cpu_cores=hw.positive("cpu_cores"),
                            accelerator=hw.text("accelerator"),
                            cuda_compute_capability=hw.text("cuda_compute_capability"),
                            dla_cores=hw.positive("dla_cores", allow_zero=True), power_rails=hw.strings("power_rails"))
    mem = t.sub("memory")
    mem.only("size_gb", "type", "bandwidth_gbps", "source", "note")
    memory = MemorySpec(size_gb=mem.positive("size_gb", float), type=mem.text("type"),
                        bandwidth_gbps=mem.positive("bandwidth_gbps", float), source=mem.text("source"),
                        note=mem.text("note") or "")
    if (memory.size_gb is not None or memory.bandwidth_gbps is not None) and not memory.source:
        mem.fail("a published size or bandwidth needs a source", "source")

    pc = t.sub("peak_compute")
    pc.only("note", "values")
    peaks = []
    for p in pc.items("values"):
        p.only("precision", "value", "unit", "sparsity", "source", "note")
        prec = p.text("precision", required=True)
        if prec not in PRECISIONS:
            p.fail(f"{prec!r} is not one of {', '.join(PRECISIONS)}", "precision")
        unit = p.text("unit", required=True)
        if unit not in ("TOPS", "TFLOPS"):
            p.fail(f"{unit!r} is not one of TOPS, TFLOPS", "unit")
        sparsity = p.text("sparsity") or "unknown"
        if sparsity not in ("sparse", "dense", "unknown"):
            p.fail(f"{sparsity!r} is not one of sparse, dense, unknown", "sparsity")
        peaks.append(PeakCompute(precision=prec, value=p.get("value", (int, float), required=True), unit=unit,
                                 sparsity=sparsity, source=p.text("source", required=True) or "",
                                 note=p.text("note") or ""))
        if peaks[-1].value <= 0:
            p.fail(f"must be > 0, got {peaks[-1].value!r}", "value")
    peak_note = pc.text("note") or ""
    if not peaks and not peak_note:
        pc.fail("no published figure given: add a note saying why (e.g. unknown for a generic host)", "note")

    modes = []
    for m in t.items("power_modes"):
        m.only("id", "name", "watts", "verified", "source", "note")
        modes.append(PowerMode(name=m.text("name", required=True) or "", watts=m.positive("watts", float),
                               id=m.positive("id", allow_zero=True), verified=m.get("verified", bool, default=False),
                               source=m.text("source") or "", note=m.text("note") or ""))

    runtimes = []
    for r in t.items("runtimes"):
        r.only("runtime", "device", "precisions", "provider", "threads", "streams", "note")
        rt = r.text("runtime", required=True) or ""
        rules = RUNTIME_RULES.get(rt)
        if rules is None:
            r.fail(f"{rt!r} is not one of {', '.join(RUNTIME_RULES)}", "runtime")
        dev = r.text("device", required=True) or ""
        if dev not in rules.devices:
            r.fail(f"{dev!r} is not one of {', '.join(rules.devices)} for {rt}", "device")
        precs = r.strings("precisions", choices=PRECISIONS, required=True)
        if not precs:
            r.fail("must list at least one precision", "precisions")
        only = rules.device_precisions.get(dev)
        if only and set(precs) - set(only):
            r.fail(f"{dev} runs {' and '.join(only)} only, got {', '.join(precs)}", "precisions")
        provider = r.text("provider")
        if rules.providers and provider not in (None, rules.providers[dev]):
            r.fail(f"{provider!r} does not run on {dev}; use {rules.providers[dev]}", "provider")
        if not rules.providers and provider is not None:
            takers = " or ".join(n for n, x in RUNTIME_RULES.items() if x.providers)
            r.fail(f"only {takers} takes an execution provider, not {rt}", "provider")
        provider = rules.providers[dev] if rules.providers else None
        runtimes.append(RuntimeSpec(runtime=rt, device=dev, precisions=precs, provider=provider,
                                    threads=r.positive("threads"), streams=r.positive("streams"),
                                    note=r.text("note") or ""))
    if not runtimes:
        t.fail("at least one [[runtimes]] entry is required", "runtimes")
    keys = [r.key for r in runtimes]
    dup = next((k for k in keys if keys.count(k) > 1), None)
    if dup:
        t.fail(f"{dup} is listed twice", "runtimes")

    dft = t.sub("defaults")
    dft.only("threads", "streams", "batch_sizes", "power_mode")
    batch = tuple(dft.get("batch_sizes", list, default=[1, 2, 4, 8, 16, 32]))
    if not batch or any(isinstance(b, bool) or not isinstance(b, int) or b <= 0 for b in batch):
        dft.fail(f"must be a non-empty list of positive integers, got {list(batch)!r}", "batch_sizes")
    power_mode = dft.text("power_mode")
    if power_mode is not None and power_mode not in [m.name for m in modes]:
        dft.fail(f"{power_mode!r} is not one of the power_modes ({', '.join(m.name for m in modes) or 'none'})",
                 "power_mode")
    bench = t.sub("bench")
    bench.only("warmup_s", "cv_threshold")
    cv = bench.positive("cv_threshold", float)
    if cv is not None and cv > 1:
        bench.fail(f"is a fraction (0.10 = 10 %), got {cv!r}", "cv_threshold")
    warmup = bench.positive("warmup_s", float, allow_zero=True)

    return TargetProfile(
        name=name or "", description=t.text("description", required=True) or "", family=family,
        arch=t.strings("arch", choices=ARCHES), runtimes=tuple(runtimes), hardware=hardware, memory=memory,
        peak_compute=tuple(peaks), peak_note=peak_note, power_modes=tuple(modes), default_power_mode=power_mode,
        threads=dft.positive("threads"), streams=dft.positive("streams") or 1, batch_sizes=batch,
        warmup_s=2.0 if warmup is None else warmup, cv_threshold=0.10 if cv is None else cv,
        notes=t.strings("notes"), device_tree_match=tuple(s.lower() for s in det.strings("device_tree")),
        module_match=tuple(s.lower() for s in det.strings("module")),
        source=origin,
    )
