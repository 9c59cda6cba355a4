"""The accepted baseline a CI gate compares a bench run with: schema ``edgekit.baseline``.

A :class:`Baseline` is made from a :class:`~edgekit.bench.results.BenchReport`
(:func:`baseline_from_report`) and written with :func:`write_baseline`
(atomically). It keeps, per row (model x runtime:device x precision, see
:func:`row_ids`):

* the model identity: manifest model name, number of classes, class names,
  weights origin, artifact format and hashes (recorded, not required to match:
  the point of a gate is a new artifact), and the preprocessing;
* accuracy **with the per-image top-1 predictions**, so that a later run on the
  same images can be compared *paired*, plus per-class accuracy;
* the latency statistics of the window (n, mean, CV, p50/p90 and their
  order-statistic CIs), which the gate uses as the run's noise;
* the flat metrics of :meth:`BenchResult.metrics` for the "what changed" report.

The eval images are identified by a :class:`DatasetFingerprint`, stored once
per distinct eval set with its label sequence. Image ``i`` of the baseline is
image ``i`` of the results only when the two fingerprints match.

Standard library and numpy only.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.bench.results import BenchReport, BenchResult
from edgekit.bench.stats import LatencyStats
from edgekit.core.atomic import atomic_write_text
from edgekit.core.errors import ArtifactError, UsageError
from edgekit.core.jsonfile import read_json_file

BASELINE_SCHEMA = "edgekit.baseline"
BASELINE_VERSION = 1
_ENV_KEYS = ("cpu_model", "board", "arch", "physical_cores", "logical_cores")


class BaselineError(ArtifactError):
    """A baseline file that is missing, corrupt, truncated, newer than supported or malformed (exit 2)."""


@dataclass(frozen=True)
class DatasetFingerprint:
    """What identifies the eval images of a row, in order.

    ``labels_sha256`` hashes the model-space label sequence (int64 little
    endian); ``ids_sha256`` hashes the eval image ids when the results record
    them (``accuracy.extra["eval_ids_sha256"]``); it is compared only when both
    sides have it. ``name`` is the dataset's name (folder or file stem).
    """

    name: str
    n: int
    num_classes: int
    labels_sha256: str
    ids_sha256: str | None = None

    @property
    def digest(self) -> str:
        text = f"{self.name}|{self.n}|{self.num_classes}|{self.labels_sha256}|{self.ids_sha256 or ''}"
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def describe(self) -> str:
        ids = f", ids {self.ids_sha256[:12]}" if self.ids_sha256 else ""
        return f"{self.name!r}, {self.n} images, labels sha256 {self.labels_sha256[:12]}{ids}"

    def mismatch(self, other: DatasetFingerprint) -> str | None:
        """Why ``other`` is not the same eval set (None when it is)."""
        diffs = []
        if self.name != other.name:
            diffs.append(f"dataset {self.name!r} vs {other.name!r}")
        if self.n != other.n:
            diffs.append(f"{self.n} vs {other.n} images")
        if self.num_classes != other.num_classes:
            diffs.append(f"{self.num_classes} vs {other.num_classes} classes")
        if self.n == other.n and self.labels_sha256 != other.labels_sha256:
            diffs.append("the label sequences differ")
        if self.ids_sha256 and other.ids_sha256 and self.ids_sha256 != other.ids_sha256:
            diffs.append("the image ids differ")
        return "; ".join(diffs) or None

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "n": self.n, "num_classes": self.num_classes,
                "labels_sha256": self.labels_sha256, "ids_sha256": self.ids_sha256, "digest": self.digest}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> DatasetFingerprint:
        return cls(name=str(d["name"]), n=int(d["n"]), num_classes=int(d["num_classes"]),
                   labels_sha256=str(d["labels_sha256"]), ids_sha256=d.get("ids_sha256"))


def labels_sha256(labels: Any) -> str:
    return hashlib.sha256(np.asarray(labels, dtype="<i8").tobytes()).hexdigest()


def dataset_fingerprint(result: BenchResult, report: BenchReport | None = None) -> DatasetFingerprint | None:
    """The eval-set fingerprint of a row with accuracy (None without accuracy)."""
    a = result.accuracy
    if a is None:
        return None
    name = a.extra.get("dataset") or ((report.dataset or {}).get("name") if report is not None else None) or ""
    ids = a.extra.get("eval_ids_sha256")
    return DatasetFingerprint(name=str(name), n=int(a.n), num_classes=int(a.num_classes),
                              labels_sha256=labels_sha256(a.labels), ids_sha256=str(ids) if ids else None)


def row_ids(report: BenchReport) -> dict[str, BenchResult]:
    """Row id -> row: ``model/runtime:device/precision``; ``@artifact`` is appended where that is ambiguous."""
    base = [f"{r.model}/{r.runtime}:{r.device}/{r.precision}" for r in report.results]
    counts = Counter(base)
    out: dict[str, BenchResult] = {}
    for rid, r in zip(base, report.results):
        out[rid if counts[rid] == 1 else f"{rid}@{r.artifact}"] = r
    return out


@dataclass(frozen=True, eq=False)
class BaselineAccuracy:
    """Accuracy of one baseline row, with the per-image predictions for pairing."""

    dataset: DatasetFingerprint
    top1: float
    top5: float | None
    macro_f1: float | None
    n_invalid: int
    predictions: np.ndarray  # (n,) int64
    labels: np.ndarray  # (n,) int64, model space
    per_class_accuracy: tuple[float | None, ...]
    class_names: tuple[str, ...] | None = None

    @property
    def n(self) -> int:
        return int(self.predictions.shape[0])


@dataclass(frozen=True, eq=False)
class BaselineRow:
    id: str
    model: str
    runtime: str
    device: str
    precision: str
    status: str
    reason: str | None
    executed_precision: str | None
    threads: int | None
    runtime_version: str | None
    artifact: dict[str, Any]  # name, format, precision, model_sha256, num_classes, weights_origin, class_names
    preprocess: dict[str, Any] | None
    accuracy: BaselineAccuracy | None
    latency: LatencyStats | None
    metrics: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, eq=False)
class Baseline:
    rows: tuple[BaselineRow, ...]
    created: str = ""
    edgekit_version: str = ""
    source: dict[str, Any] = field(default_factory=dict)  # what results it came from
    environment: dict[str, Any] | None = None
    dataset: dict[str, Any] | None = None  # the bench report's dataset block
    version: int = BASELINE_VERSION

    def row(self, row_id: str) -> BaselineRow:
        for r in self.rows:
            if r.id == row_id:
                return r
        raise KeyError(row_id)

    @property
    def models(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(r.model for r in self.rows))

    def to_json(self) -> dict[str, Any]:
        datasets: dict[str, Any] = {}
        rows = []
        for r in self.rows:
            acc = None
            if r.accuracy is not None:
                a = r.accuracy
                fp = a.dataset
                datasets.setdefault(fp.digest, {**fp.to_json(), "labels": a.labels.tolist()})
                acc = {"dataset": fp.digest, "n": a.n, "top1": a.top1, "top5": a.top5, "macro_f1": a.macro_f1,
                       "n_invalid": a.n_invalid, "per_class_accuracy": list(a.per_class_accuracy),
                       "class_names": list(a.class_names) if a.class_names is not None else None,
                       "predictions": a.predictions.tolist()}
            rows.append({
                "id": r.id, "model": r.model, "runtime": r.runtime, "device": r.device, "precision": r.precision,
                "status": r.status, "reason": r.reason, "executed_precision": r.executed_precision,
                "threads": r.threads, "runtime_version": r.runtime_version, "artifact": dict(r.artifact),
                "preprocess": r.preprocess, "accuracy": acc,
                "latency": r.latency.to_json() if r.latency is not None else None, "metrics": dict(r.metrics),
            })
        return {"schema": BASELINE_SCHEMA, "schema_version": BASELINE_VERSION, "created": self.created,
                "edgekit_version": self.edgekit_version, "source": dict(self.source),
                "environment": self.environment, "dataset": self.dataset, "datasets": datasets, "rows": rows}

    def to_json_text(self) -> str:
        """Indented JSON with every list of plain values (predictions, labels, per-class) on one line."""
        packed: list[str] = []

        def pack(v: Any) -> Any:
            if isinstance(v, dict):
                return {k: pack(x) for k, x in v.items()}
            if isinstance(v, list):
                if all(not isinstance(x, (dict, list)) for x in v):
                    packed.append(json.dumps(v, separators=(",", ":"), allow_nan=True))
                    return f"\x00{len(packed) - 1}\x00"
                return [pack(x) for x in v]
            return v

        text = json.dumps(pack(self.to_json()), indent=1, allow_nan=True)
        for i, s in enumerate(packed):
            text = text.replace(f'"\\u0000{i}\\u0000"', s, 1)
        return text + "\n"

    @classmethod
    def from_json(cls, d: Any, *, origin: str = "<json>") -> Baseline:
        if not isinstance(d, dict) or d.get("schema") != BASELINE_SCHEMA:
            found = d.get("schema") if isinstance(d, dict) else type(d).__name__
            raise BaselineError(f"{origin} is not an edgekit baseline (schema {found!r})",
                                hint="make one with 'edgekit gate RESULTS --baseline FILE --update-baseline'")
        version = d.get("schema_version")
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            raise BaselineError(f"{origin}: baseline schema_version {version!r} is not a positive integer")
        if version > BASELINE_VERSION:
            raise BaselineError(f"{origin} has baseline schema version {version}, newer than this edgekit reads "
                                f"({BASELINE_VERSION})", hint="upgrade edgekit in this job")
        try:
            datasets = {k: v for k, v in d["datasets"].items()}
            rows = tuple(_row_from_json(r, datasets) for r in d["rows"])
            out = cls(rows=rows, created=str(d.get("created", "")), edgekit_version=str(d.get("edgekit_version", "")),
                      source=dict(d.get("source") or {}), environment=d.get("environment"),
                      dataset=d.get("dataset"), version=version)
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as e:
            what = f"missing field {e}" if isinstance(e, KeyError) else f"{type(e).__name__}: {e}"
            raise BaselineError(f"{origin} is a malformed edgekit baseline ({what})",
                                hint="re-create it with --update-baseline") from None
        dup = [k for k, v in Counter(r.id for r in rows).items() if v > 1]
        if dup:
            raise BaselineError(f"{origin} lists row {dup[0]!r} twice", hint="re-create it with --update-baseline")
        return out


def _row_from_json(r: dict[str, Any], datasets: dict[str, Any]) -> BaselineRow:
    acc = None
    if r["accuracy"] is not None:
        a = r["accuracy"]
        ds = datasets[a["dataset"]]
        fp = DatasetFingerprint.from_json(ds)
        labels = np.asarray(ds["labels"], dtype=np.int64)
        preds = np.asarray(a["predictions"], dtype=np.int64)
        if labels.ndim != 1 or preds.shape != labels.shape or labels.shape[0] != fp.n:
            raise ValueError(f"row {r['id']}: {preds.shape[0]} predictions, {labels.shape[0]} labels for {fp.n} "
                             "images")
        if labels_sha256(labels) != fp.labels_sha256:
            raise ValueError(f"dataset {a['dataset']}: the stored labels do not match their sha256")
        acc = BaselineAccuracy(
            dataset=fp, top1=float(a["top1"]), top5=None if a.get("top5") is None else float(a["top5"]),
            macro_f1=None if a.get("macro_f1") is None else float(a["macro_f1"]), n_invalid=int(a.get("n_invalid", 0)),
            predictions=preds, labels=labels, per_class_accuracy=tuple(a.get("per_class_accuracy") or ()),
            class_names=tuple(a["class_names"]) if a.get("class_names") is not None else None)
    lat = r["latency"]
    return BaselineRow(
        id=str(r["id"]), model=str(r["model"]), runtime=str(r["runtime"]), device=str(r["device"]),
        precision=str(r["precision"]), status=str(r["status"]), reason=r.get("reason"),
        executed_precision=r.get("executed_precision"), threads=r.get("threads"),
        runtime_version=r.get("runtime_version"), artifact=dict(r["artifact"]), preprocess=r.get("preprocess"),
        accuracy=acc, latency=LatencyStats.from_json(lat) if lat else None, metrics=dict(r.get("metrics") or {}))


def environment_summary(report: BenchReport) -> dict[str, Any] | None:
    """The hardware identity latency comparisons need (CPU model, board, arch, cores)."""
    env = report.environment
    if env is None:
        return None
    return {k: getattr(env, k, None) for k in _ENV_KEYS}


def baseline_from_report(report: BenchReport, *, source: str | None = None) -> Baseline:
    """A baseline of every row of ``report`` (``source``: where it was read from, for the record)."""
    arts = {a.name: a for a in report.artifacts}
    rows = []
    for rid, r in row_ids(report).items():
        art = arts.get(r.artifact)
        acc = None
        a, fp = r.accuracy, dataset_fingerprint(r, report)
        if a is not None and fp is not None:
            acc = BaselineAccuracy(dataset=fp, top1=a.top1, top5=a.top5, macro_f1=a.macro_f1, n_invalid=a.n_invalid,
                                   predictions=np.asarray(a.predictions, dtype=np.int64),
                                   labels=np.asarray(a.labels, dtype=np.int64),
                                   per_class_accuracy=tuple(a.per_class_accuracy), class_names=a.class_names)
        identity = artifact_identity(art, r)
        rows.append(BaselineRow(
            id=rid, model=r.model, runtime=r.runtime, device=r.device, precision=r.precision, status=r.status,
            reason=r.reason, executed_precision=r.executed_precision,
            threads=r.runner.threads if r.runner else None,
            runtime_version=r.runner.runtime_version if r.runner else None, artifact=identity,
            preprocess=dict(art.preprocess) if art is not None else None, accuracy=acc,
            latency=r.latency.stats if r.latency is not None else None, metrics=_clean(r.metrics(art))))
    src = {"results_created": report.created, "results_edgekit_version": report.edgekit_version,
           "target": report.target_name, "command": list(report.command)}
    if source is not None:
        src["results_file"] = str(source)
    from edgekit import __version__

    return Baseline(rows=tuple(rows), created=_dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
                    edgekit_version=__version__, source=src, environment=environment_summary(report),
                    dataset=dict(report.dataset) if report.dataset else None)


def artifact_identity(art: Any, r: BenchResult) -> dict[str, Any]:
    """What names the model of a row (class names come from the accuracy when the artifact has none)."""
    names = r.accuracy.class_names if r.accuracy is not None else None
    if art is None:
        return {"name": r.artifact, "class_names": list(names) if names else None}
    return {"name": art.name, "format": art.format, "precision": art.precision, "model_sha256": art.model_sha256,
            "num_classes": art.num_classes, "weights_origin": art.weights_origin,
            "class_names": list(names) if names else None}


def _clean(m: dict[str, Any]) -> dict[str, Any]:
    return {k: (v.item() if isinstance(v, np.generic) else v) for k, v in m.items()}


def load_baseline(path: str | os.PathLike[str]) -> Baseline:
    """Read a baseline; a missing, empty, corrupt, truncated, foreign or newer file is a :class:`BaselineError`."""
    data = read_json_file(path, what="baseline file", error=BaselineError,
                          missing_hint="create it with 'edgekit gate RESULTS --baseline FILE --update-baseline'",
                          broken_hint="restore it from version control or re-create it with --update-baseline")
    return Baseline.from_json(data, origin=str(path))


def write_baseline(baseline: Baseline, path: str | os.PathLike[str]) -> Path:
    """Write ``baseline`` atomically (a reader never sees half a file)."""
    if not baseline.rows:
        raise UsageError("refusing to write a baseline with no rows", hint="bench at least one artifact first")
    return atomic_write_text(Path(path), baseline.to_json_text())
