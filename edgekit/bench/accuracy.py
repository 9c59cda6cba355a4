"""Classification accuracy from logits and labels (numpy only).

Definitions:

* **top-1** uses ``argmax`` (ties go to the lowest class index, as numpy does);
  **top-k** counts a hit when the label's logit is among the k largest (ties at
  the k-th value resolved by class index, lowest first). top-5 is None when the
  model has fewer than 5 classes.
* A row of logits with a NaN or infinite value is **invalid**: it counts as
  wrong for every metric, has prediction -1, and stays out of the confusion
  matrix; ``n_invalid`` records how many there were. A model that emits NaN
  fails accuracy visibly instead of crashing the evaluation.
* **Macro precision / recall / F1** average over the classes that occur in
  the labels (support > 0): a subset eval of a 1000-class model is not
  penalised for classes it never saw. A class with support but no predictions
  has precision 0 (scikit-learn's ``zero_division=0``); F1 is the mean of the
  per-class F1 scores (F1 = 0 where precision + recall = 0), not the F1 of the
  macro precision and recall. Equal to scikit-learn's
  ``precision_recall_fscore_support(average="macro", labels=<classes in y>,
  zero_division=0)``.
* **per-class accuracy** is per-class recall; None for classes with no support.
* **agreement** is the fraction of images whose top-1 matches a reference
  model's top-1 on the same images (Polygraphy-style index comparison).

Fractions are in [0, 1]; reports show them in percent.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edgekit.core.errors import DataError

log = logging.getLogger(__name__)


def _as_logits(logits: Any, name: str = "logits") -> np.ndarray:
    a = np.asarray(logits)
    if a.ndim == 1:
        raise DataError(f"{name} must be 2-D (images x classes), got a 1-D array of {a.shape[0]}",
                        hint="pass the model's raw outputs, not predictions")
    if a.ndim > 2:
        a = a.reshape(a.shape[0], -1)  # (N, C, 1, 1) heads
    if a.ndim != 2 or a.shape[1] == 0:
        raise DataError(f"{name} must be 2-D (images x classes), got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.number):
        raise DataError(f"{name} must be numeric, got dtype {a.dtype}")
    return a if np.issubdtype(a.dtype, np.floating) else a.astype(np.float64)


def _as_labels(labels: Any, n: int, num_classes: int) -> np.ndarray:
    y = np.asarray(labels)
    if y.ndim != 1 or y.shape[0] != n:
        raise DataError(f"labels must be 1-D with one label per image ({n}), got shape {y.shape}")
    if n and not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise DataError(f"labels must be integer class indices, got dtype {y.dtype}")
    bad = (y < 0) | (y >= num_classes)
    if bad.any():
        i = int(np.argmax(bad))
        raise DataError(f"label {int(y[i])} at image {i} is outside 0..{num_classes - 1}",
                        hint="check that the dataset's class order matches the model's labels")
    return y.astype(np.int64)


def predictions_from(logits_or_predictions: Any, name: str = "reference") -> np.ndarray:
    """Top-1 predictions from logits (N, C) or passed through from predictions (N,); -1 for invalid rows."""
    a = np.asarray(logits_or_predictions)
    if a.ndim == 1:
        if a.size and not np.issubdtype(a.dtype, np.integer):
            raise DataError(f"{name} predictions must be integer class indices, got dtype {a.dtype}")
        return a.astype(np.int64)
    x = _as_logits(a, name)
    pred = np.argmax(np.where(np.isfinite(x), x, -np.inf), axis=1).astype(np.int64)
    pred[~np.isfinite(x).all(axis=1)] = -1
    return pred


def topk_correct(logits: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Per-image bool: the label is among the k highest logits (ties by lowest index)."""
    x = _as_logits(logits)
    out = np.zeros(x.shape[0], dtype=bool)
    idx = np.arange(x.shape[1])[None, :]
    for s in range(0, x.shape[0], 4096):  # chunks bound the (rows x classes) temporaries
        xs, ys = x[s:s + 4096], labels[s:s + 4096]
        # rank of the label = classes with a higher logit, plus equal ones with a lower index
        lab = xs[np.arange(xs.shape[0]), ys][:, None]
        better = (xs > lab) | ((xs == lab) & (idx < ys[:, None]))
        out[s:s + 4096] = (better.sum(axis=1) < k) & np.isfinite(xs).all(axis=1)
    return out


@dataclass(frozen=True, eq=False)
class AccuracyResult:
    """Accuracy of one model on one labelled set. Arrays are kept for paired comparisons."""

    n: int
    num_classes: int
    top1: float
    top5: float | None
    macro_precision: float
    macro_recall: float
    macro_f1: float
    n_invalid: int
    predictions: np.ndarray  # (N,) int64, -1 for invalid rows
    labels: np.ndarray  # (N,) int64
    confusion: np.ndarray  # (C, C) int64, rows = true class, columns = predicted
    agreement: float | None = None  # top-1 agreement with the reference model, when given
    class_names: tuple[str, ...] | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def support(self) -> np.ndarray:
        return np.bincount(self.labels, minlength=self.num_classes)

    @property
    def per_class_accuracy(self) -> list[float | None]:
        sup = self.support
        diag = np.diag(self.confusion)
        return [float(diag[c] / sup[c]) if sup[c] else None for c in range(self.num_classes)]

    @property
    def correct(self) -> np.ndarray:
        return self.predictions == self.labels

    def to_json(self) -> dict[str, Any]:
        rows, cols = np.nonzero(self.confusion)
        return {
            "n": self.n, "num_classes": self.num_classes, "top1": self.top1, "top5": self.top5,
            "macro_precision": self.macro_precision, "macro_recall": self.macro_recall, "macro_f1": self.macro_f1,
            "n_invalid": self.n_invalid, "agreement": self.agreement,
            "per_class_accuracy": self.per_class_accuracy,
            "confusion": [[int(r), int(c), int(self.confusion[r, c])] for r, c in zip(rows, cols)],
            "confusion_format": "sparse [true, predicted, count]",
            "predictions": self.predictions.tolist(), "labels": self.labels.tolist(),
            "class_names": list(self.class_names) if self.class_names is not None else None,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> AccuracyResult:
        c = int(d["num_classes"])
        conf = np.zeros((c, c), dtype=np.int64)
        for r, col, v in d.get("confusion", []):
            conf[r, col] = v
        return cls(
            n=int(d["n"]), num_classes=c, top1=float(d["top1"]),
            top5=None if d.get("top5") is None else float(d["top5"]),
            macro_precision=float(d["macro_precision"]), macro_recall=float(d["macro_recall"]),
            macro_f1=float(d["macro_f1"]), n_invalid=int(d.get("n_invalid", 0)),
            predictions=np.asarray(d["predictions"], dtype=np.int64), labels=np.asarray(d["labels"], dtype=np.int64),
            confusion=conf, agreement=d.get("agreement"),
            class_names=tuple(d["class_names"]) if d.get("class_names") is not None else None,
            extra=dict(d.get("extra", {})),
        )


def compute_accuracy(
    logits: Any,
    labels: Any,
    *,
    reference: Any | None = None,
    num_classes: int | None = None,
    class_names: tuple[str, ...] | None = None,
) -> AccuracyResult:
    """Top-1/top-5, macro P/R/F1, confusion matrix and (optionally) agreement with ``reference``.

    ``logits``: (N, C) model outputs (softmax not needed). ``labels``: (N,) class indices.
    ``reference``: the reference model's logits (N, C) or top-1 predictions (N,) on the same images.
    """
    x = _as_logits(logits)
    n, c = x.shape
    if n == 0:
        raise DataError("no images to evaluate")
    if num_classes is not None and num_classes != c:
        raise DataError(f"logits have {c} classes, expected {num_classes}")
    if class_names is not None and len(class_names) != c:
        raise DataError(f"{len(class_names)} class names for {c} classes")
    y = _as_labels(labels, n, c)
    pred = predictions_from(x, "logits")
    valid = pred >= 0
    n_invalid = int((~valid).sum())
    if n_invalid:
        log.warning("%d of %d logit rows contain NaN or Inf; they count as wrong", n_invalid, n)

    conf = np.zeros((c, c), dtype=np.int64)
    np.add.at(conf, (y[valid], pred[valid]), 1)
    tp = np.diag(conf).astype(np.float64)
    predicted = conf.sum(axis=0).astype(np.float64)
    support = np.bincount(y, minlength=c).astype(np.float64)
    present = support > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(predicted > 0, tp / predicted, 0.0)
        rec = np.where(support > 0, tp / support, 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)

    agreement = None
    if reference is not None:
        ref = predictions_from(reference)
        if ref.shape[0] != n:
            raise DataError(f"reference has {ref.shape[0]} images, this model {n}: they must be the same images")
        agreement = float(np.mean((ref == pred) & valid))

    return AccuracyResult(
        n=n, num_classes=c, top1=float(np.mean(pred == y)),
        top5=float(np.mean(topk_correct(x, y, 5))) if c >= 5 else None,
        macro_precision=float(prec[present].mean()), macro_recall=float(rec[present].mean()),
        macro_f1=float(f1[present].mean()), n_invalid=n_invalid, predictions=pred, labels=y,
        confusion=conf, agreement=agreement, class_names=class_names,
    )
