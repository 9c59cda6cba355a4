"""Which images of a dataset an artifact may be *evaluated* on: its recorded splits.

An artifact trained by ``edgekit finetune`` records, in its manifest's
``extra.dataset``, where its data came from (``source``) and the ids of its
validation and test images (``validation_ids``, ``test_ids``; older
manifests: ``heldout_ids``, the test split). Given that same data again
(the embedded set, or the same folder), evaluation must use the recorded
**test** split: every other image was trained on or chose something, and
counting it as held-out inflates accuracy.

:func:`split_rows` answers, for a dataset and a manifest, the rows of each
split (``train``, ``validation``, ``test``):

* the data the artifact was trained on, with ids recorded: those ids;
* the same data without recorded ids (only a hash): :class:`DataError`;
* data the artifact never saw (``fresh``): a seeded, stratified split of it
  into ``train`` (calibration), ``validation`` and ``test`` by
  :func:`edgekit.data.embedded.split_indices`, so that calibration and
  evaluation images are disjoint by construction. Torch-free.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import DataError
from edgekit.data.embedded import EMBEDDED_NAME, split_indices

#: the three roles, in order
SPLIT_NAMES = ("train", "validation", "test")
#: a fresh dataset (never seen by the artifact) used for calibration and evaluation at once
FRESH_FRACTIONS = {"validation": 0.1, "test": 0.2}
#: a fresh dataset used for evaluation only: half selects, half reports
EVAL_ONLY_VALIDATION = 0.5
_SALT = 104729


def sample_id(dataset: Any, row: int) -> str:
    """A stable name of a sample: its id in an ArrayDataset, its path below an ImageFolder root."""
    ids = getattr(dataset, "ids", None)
    if isinstance(ids, np.ndarray):  # ArrayDataset: the index in its source (the embedded file)
        return str(int(ids[row]))
    src = dataset.source(row)
    root = getattr(dataset, "root", None)
    if isinstance(src, Path) and isinstance(root, Path):
        try:
            return src.relative_to(root).as_posix()
        except ValueError:
            return src.as_posix()
    return str(src)


@dataclass(frozen=True)
class Splits:
    rows: dict[str, np.ndarray]  # split name -> sorted row indices into the dataset
    origin: str  # "recorded" (the artifact's own splits) or "fresh" (split here, seeded)
    note: str

    def __getitem__(self, name: str) -> np.ndarray:
        return self.rows[name]


def _resolved(p: Any) -> str | None:
    if p is None:
        return None
    s = str(p)
    if s.startswith("embedded"):
        return f"embedded:{EMBEDDED_NAME}"
    try:
        return str(Path(s).expanduser().resolve())
    except OSError:
        return s


def trained_on(dataset_record: dict[str, Any] | None, spec: str | Path | None) -> bool:
    """True when ``spec`` names the data recorded in a manifest's ``extra.dataset``."""
    if not dataset_record or not dataset_record.get("source"):
        return False
    rec = str(dataset_record["source"])
    if spec is None or str(spec).startswith("embedded"):
        return rec.startswith("embedded")
    return _resolved(spec) == _resolved(rec)


def split_rows(dataset: Any, dataset_record: dict[str, Any] | None, spec: str | Path | None, *, seed: int = 0,
               eval_only: bool = False) -> Splits:
    """The rows of ``dataset`` in each split (see the module notes)."""
    n = len(dataset)
    if trained_on(dataset_record, spec):
        rec = dataset_record or {}
        test_ids = rec.get("test_ids", rec.get("heldout_ids"))
        val_ids = rec.get("validation_ids")
        if test_ids is None and str(rec.get("source", "")).startswith("embedded"):
            from edgekit.data.embedded import (
                embedded_split_indices,  # older manifests: the ids are implied
            )

            test_ids = [str(int(i)) for i in embedded_split_indices("test")]
        if test_ids is None:
            raise DataError(
                f"{spec} is the data this model was trained on, but its manifest records only a hash of the "
                "held-out images, not their ids: evaluating on it would count training images as held-out",
                hint="evaluate on images the model never saw (a separate folder), or re-run finetune to record them")
        ids = [sample_id(dataset, i) for i in range(n)]
        test_set, val_set = set(map(str, test_ids)), set(map(str, val_ids or ()))
        test = np.asarray([i for i, s in enumerate(ids) if s in test_set], dtype=np.int64)
        val = np.asarray([i for i, s in enumerate(ids) if s in val_set], dtype=np.int64)
        train = np.asarray([i for i, s in enumerate(ids) if s not in test_set and s not in val_set], dtype=np.int64)
        return Splits({"train": train, "validation": val, "test": test}, "recorded",
                      f"the model's recorded test split of {spec} ({test.size} images; its other images were "
                      "trained on or selected the epoch)")
    labels = np.asarray(dataset.labels)
    groups = np.arange(n)
    if eval_only:
        test, val = split_indices(labels, groups, heldout_fraction=EVAL_ONLY_VALIDATION, seed=seed + _SALT)
        return Splits({"train": np.zeros(0, dtype=np.int64), "validation": val, "test": test}, "fresh",
                      f"{spec}: never seen by the model; split seeded {seed}: validation {val.size}, test {test.size}")
    pool, test = split_indices(labels, groups, heldout_fraction=FRESH_FRACTIONS["test"], seed=seed)
    rel = FRESH_FRACTIONS["validation"] / (1 - FRESH_FRACTIONS["test"])
    tr, va = split_indices(labels[pool], groups[pool], heldout_fraction=rel, seed=seed + _SALT)
    return Splits({"train": pool[tr], "validation": pool[va], "test": test}, "fresh",
                  f"{spec}: split seeded {seed}: calibration from {tr.size}, validation {va.size}, test {test.size}")
