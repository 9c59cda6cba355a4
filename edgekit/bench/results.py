"""The versioned results of ``edgekit bench``: one :class:`BenchReport` of :class:`BenchResult` rows.

Schema ``edgekit.bench``, version :data:`SCHEMA_VERSION`, documented field by
field in ``docs/results-schema.md``. Every object has ``to_json`` /
``from_json``; :func:`load_report` reads a file back and turns a missing,
corrupt, truncated, foreign or newer-version file into one-line edgekit
errors; :func:`write_report` writes atomically. Latency is in milliseconds,
fractions (top-1, agreement) are in [0, 1], sizes in MiB, and
:meth:`BenchResult.metrics` flattens a row into ``snake_case`` keys for CSV
and gates. Standard library and numpy only.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edgekit.bench.accuracy import AccuracyResult
from edgekit.bench.environment import Environment
from edgekit.bench.harness import LatencyResult, ThroughputResult
from edgekit.bench.memory import MemoryResult
from edgekit.bench.paired import PairedComparison
from edgekit.core.atomic import atomic_write_text
from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.jsonfile import read_json_file
from edgekit.runtime.base import RunnerInfo
from edgekit.telemetry.result import TelemetryResult

SCHEMA = "edgekit.bench"
SCHEMA_VERSION = 1
#: row status: measured; the runtime cannot run this precision/device here; not attempted; failed; measured
#: while the device throttled (a thermal trip, an over-current event, a throttle bit: not a valid number); not
#: measured because its device failed, disappeared or timed out during a sweep (never retried within the run)
STATUSES = ("ok", "unsupported", "skipped", "error", "throttled", "invalid")
FAILED_STATUSES = ("error", "invalid")
_MB = 1024 * 1024


@dataclass(frozen=True)
class ArtifactInfo:
    """One benchmarked artifact: identity, hashes, size and graph profile."""

    name: str  # unique within the report (the directory name, de-duplicated)
    path: str
    model: str
    format: str
    precision: str  # as the manifest declares it
    model_file: str
    model_sha256: str | None
    files: dict[str, str]  # relative path -> sha256, from the verified manifest
    size_bytes: int
    input_shape: tuple[int | str, ...]
    input_dtype: str
    num_classes: int
    has_labels: bool
    weights_origin: str
    preprocess: dict[str, Any]
    profile: dict[str, Any] | None = None  # params, macs, gmacs, macs_complete, notes
    profile_error: str | None = None
    lineage: tuple[dict[str, Any], ...] = ()

    @property
    def params(self) -> int | None:
        return None if self.profile is None else self.profile.get("params")

    @property
    def macs(self) -> int | None:
        return None if self.profile is None else self.profile.get("macs")

    def to_json(self) -> dict[str, Any]:
        d = dict(self.__dict__)
        d["input_shape"] = list(self.input_shape)
        d["lineage"] = list(self.lineage)
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> ArtifactInfo:
        kw = {k: d[k] for k in cls.__dataclass_fields__ if k in d}
        kw["input_shape"] = tuple(kw.get("input_shape", ()))
        kw["lineage"] = tuple(kw.get("lineage", ()))
        kw["files"] = dict(kw.get("files") or {})
        return cls(**kw)


def _runner_info(d: dict[str, Any] | None) -> RunnerInfo | None:
    if d is None:
        return None
    return RunnerInfo(runtime=d["runtime"], runtime_version=d["runtime_version"], device=d["device"],
                      precision=d["precision"], threads=d.get("threads"), details=dict(d.get("details") or {}))


@dataclass(frozen=True, eq=False)
class BenchResult:
    """One artifact x runtime x precision row."""

    key: str  # "<artifact>/<runtime>:<device>/<precision>", unique within the report
    artifact: str  # ArtifactInfo.name
    model: str
    runtime: str
    device: str
    precision: str  # asked for
    status: str  # one of STATUSES
    reason: str | None = None  # why not ok
    runner: RunnerInfo | None = None  # what actually ran: version, threads, precision executed, device
    load_ms: float | None = None  # runner creation + compile for the latency (batch-1) configuration
    latency: LatencyResult | None = None
    latency_skipped: str | None = None
    throughput: ThroughputResult | None = None
    memory: MemoryResult | None = None
    accuracy: AccuracyResult | None = None
    accuracy_skipped: str | None = None
    reference: str | None = None  # key of the FP32 reference row (itself for the reference)
    paired: PairedComparison | None = None  # vs the reference; None for the reference itself
    telemetry: TelemetryResult | None = None  # power, energy, temperatures, clocks of the latency window
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    @property
    def executed_precision(self) -> str | None:
        return self.runner.precision if self.runner is not None else None

    @property
    def unstable(self) -> bool:
        return bool(self.latency is not None and self.latency.stats.unstable)

    def metrics(self, artifact: ArtifactInfo | None = None) -> dict[str, Any]:
        """Flat metric keys (latency in ms, fractions in [0, 1]); None where not measured."""
        m: dict[str, Any] = {"status": self.status, "executed_precision": self.executed_precision,
                             "threads": self.runner.threads if self.runner is not None else None, "load_ms": self.load_ms}
        s = self.latency.stats if self.latency is not None else None
        for k in ("n", "mean", "std", "cv", "min", "p50", "p90", "p95", "p99", "max", "p90_upper"):
            m[f"latency_{k}" + ("" if k in ("n", "cv") else "_ms")] = getattr(s, k) if s is not None else None
        m["latency_unstable"] = s.unstable if s is not None else None
        rs = self.latency.runtime_stats if self.latency is not None else None
        m["runtime_latency_p50_ms"] = rs.p50 if rs is not None else None
        m["runtime_latency_p90_ms"] = rs.p90 if rs is not None else None
        m["cold_ms"] = self.latency.cold_ms if self.latency is not None else None
        m["latency_throughput_sps"] = self.latency.throughput if self.latency is not None else None
        best = self.throughput.best if self.throughput is not None else None
        m["throughput_best_sps"] = best.samples_per_s if best is not None else None
        m["throughput_best_batch"] = best.batch_size if best is not None else None
        for p in self.throughput.points if self.throughput is not None else ():
            m[f"throughput_b{p.batch_size}_sps"] = p.samples_per_s
        mem = self.memory
        m["peak_rss_mb"] = mem.peak_rss_mb if mem is not None else None
        m["peak_rss_increase_mb"] = mem.peak_increase_mb if mem is not None else None
        if artifact is not None:
            m["model_size_mb"] = artifact.size_bytes / _MB
            m["params"], m["macs"] = artifact.params, artifact.macs
        a = self.accuracy
        for k in ("n", "top1", "top5", "macro_precision", "macro_recall", "macro_f1", "agreement"):
            m[k if k != "n" else "accuracy_n"] = getattr(a, k) if a is not None else None
        p = self.paired
        m["top1_drop_pts"] = p.drop_pts if p is not None else None
        m["top1_drop_ci_low_pts"] = p.ci_pts[0] if p is not None else None
        m["top1_drop_ci_high_pts"] = p.ci_pts[1] if p is not None else None
        m["disagreements"] = p.disagreements if p is not None else None
        m["mcnemar_p"] = p.mcnemar_p if p is not None else None
        m["accuracy_verdict"] = p.verdict if p is not None else None
        m.update(self.telemetry.metrics() if self.telemetry is not None
                 else dict.fromkeys(TelemetryResult().metrics()))
        return m

    def to_json(self, *, artifact: ArtifactInfo | None = None, include_samples: bool = False) -> dict[str, Any]:
        return {
            "key": self.key, "artifact": self.artifact, "model": self.model, "runtime": self.runtime,
            "device": self.device, "precision": self.precision, "status": self.status, "reason": self.reason,
            "executed_precision": self.executed_precision,
            "runner": self.runner.to_json() if self.runner is not None else None, "load_ms": self.load_ms,
            "latency": self.latency.to_json(include_samples=include_samples) if self.latency is not None else None,
            "latency_skipped": self.latency_skipped,
            "throughput": self.throughput.to_json() if self.throughput is not None else None,
            "memory": self.memory.to_json() if self.memory is not None else None,
            "accuracy": self.accuracy.to_json() if self.accuracy is not None else None,
            "accuracy_skipped": self.accuracy_skipped, "reference": self.reference,
            "paired": self.paired.to_json() if self.paired is not None else None,
            "telemetry": self.telemetry.to_json() if self.telemetry is not None else None,
            "warnings": list(self.warnings),
            "metrics": self.metrics(artifact),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> BenchResult:
        status = d["status"]
        if status not in STATUSES:
            raise ValueError(f"status {status!r} is not one of {', '.join(STATUSES)}")
        return cls(
            key=d["key"], artifact=d["artifact"], model=d["model"], runtime=d["runtime"], device=d["device"],
            precision=d["precision"], status=status, reason=d.get("reason"), runner=_runner_info(d.get("runner")),
            load_ms=d.get("load_ms"),
            latency=LatencyResult.from_json(d["latency"]) if d.get("latency") else None,
            latency_skipped=d.get("latency_skipped"),
            throughput=ThroughputResult.from_json(d["throughput"]) if d.get("throughput") else None,
            memory=MemoryResult.from_json(d["memory"]) if d.get("memory") else None,
            accuracy=AccuracyResult.from_json(d["accuracy"]) if d.get("accuracy") else None,
            accuracy_skipped=d.get("accuracy_skipped"), reference=d.get("reference"),
            paired=PairedComparison.from_json(d["paired"]) if d.get("paired") else None,
            telemetry=TelemetryResult.from_json(d["telemetry"]) if d.get("telemetry") else None,
            warnings=tuple(d.get("warnings", ())),
        )


@dataclass(frozen=True, eq=False)
class BenchReport:
    """Everything one ``edgekit bench`` run measured, and on what."""

    target: dict[str, Any]  # name, description, source, profile (the TOML schema as JSON)
    settings: dict[str, Any]  # the resolved options: tier, durations, threads, batch sizes, data, seed
    environment: Environment | None
    artifacts: tuple[ArtifactInfo, ...]
    results: tuple[BenchResult, ...]
    dataset: dict[str, Any] | None = None
    created: str = ""
    edgekit_version: str = ""
    command: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    include_samples: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def target_name(self) -> str:
        return str(self.target.get("name", ""))

    def artifact(self, name: str) -> ArtifactInfo:
        for a in self.artifacts:
            if a.name == name:
                return a
        raise KeyError(name)

    def result(self, key: str) -> BenchResult:
        for r in self.results:
            if r.key == key:
                return r
        raise KeyError(key)

    def find(self, *, runtime: str | None = None, precision: str | None = None, artifact: str | None = None,
             status: str | None = None) -> list[BenchResult]:
        """Rows matching every given filter, in report order."""
        return [r for r in self.results
                if (runtime is None or r.runtime == runtime) and (precision is None or r.precision == precision)
                and (artifact is None or r.artifact == artifact) and (status is None or r.status == status)]

    @property
    def failed(self) -> list[BenchResult]:
        return [r for r in self.results if r.status in FAILED_STATUSES]

    def to_json(self) -> dict[str, Any]:
        arts = {a.name: a for a in self.artifacts}
        return {
            "schema": SCHEMA, "schema_version": SCHEMA_VERSION, "created": self.created,
            "edgekit_version": self.edgekit_version, "command": list(self.command), "target": dict(self.target),
            "settings": dict(self.settings),
            "environment": self.environment.to_json() if self.environment else None,
            "dataset": self.dataset, "artifacts": [a.to_json() for a in self.artifacts],
            "results": [r.to_json(artifact=arts.get(r.artifact), include_samples=self.include_samples)
                        for r in self.results],
            "warnings": list(self.warnings), "extra": dict(self.extra),
        }

    def to_json_text(self) -> str:
        return json.dumps(self.to_json(), indent=2, allow_nan=True) + "\n"

    @classmethod
    def from_json(cls, d: Any, *, origin: str = "<json>") -> BenchReport:
        if not isinstance(d, dict) or d.get("schema") != SCHEMA:
            found = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise ArtifactError(f"{origin} is not an edgekit bench results file (schema {found!r})",
                                hint=f"give a file written by 'edgekit bench -o' (schema {SCHEMA})")
        version = d.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise ArtifactError(f"{origin}: schema_version {version!r} is not a positive integer")
        if version > SCHEMA_VERSION:
            raise UsageError(f"{origin} has results schema version {version}, newer than this edgekit reads "
                             f"({SCHEMA_VERSION})", hint="upgrade edgekit to read it")
        try:
            env = d.get("environment")
            return cls(
                target=dict(d["target"]), settings=dict(d["settings"]),
                environment=Environment.from_json(env) if env else None,
                artifacts=tuple(ArtifactInfo.from_json(a) for a in d["artifacts"]),
                results=tuple(BenchResult.from_json(r) for r in d["results"]),
                dataset=d.get("dataset"), created=str(d.get("created", "")),
                edgekit_version=str(d.get("edgekit_version", "")), command=tuple(d.get("command", ())),
                warnings=tuple(d.get("warnings", ())),
                include_samples=any(bool((r.get("latency") or {}).get("latencies_ns")) for r in d["results"]),
                extra=dict(d.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            what = f"missing field {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            raise ArtifactError(f"{origin} is a malformed edgekit bench results file ({what})",
                                hint="re-run 'edgekit bench -o FILE'") from None


def load_report(path: str | os.PathLike[str]) -> BenchReport:
    """Read a results file written by :func:`write_report` (or ``edgekit bench -o``)."""
    data = read_json_file(path, what="results file", error=ArtifactError,
                          missing_hint="give a file written by 'edgekit bench -o'",
                          broken_hint="re-run 'edgekit bench -o FILE'")
    return BenchReport.from_json(data, origin=str(path))


def write_report(report: BenchReport, path: str | os.PathLike[str]) -> Path:
    """Write ``report`` as JSON atomically (a reader never sees half a file)."""
    return atomic_write_text(Path(path), report.to_json_text())
