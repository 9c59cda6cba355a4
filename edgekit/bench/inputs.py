"""The images a benchmark runs on: the latency sample pool and the labelled eval set.

* **Sample pool**: real images from the dataset (``--data``, or the embedded
  held-out split), chosen stratified and seeded, preprocessed once with the
  artifact's own :class:`~edgekit.core.specs.PreprocessSpec` and held in
  memory as batch-1 feeds. The harness cycles through them; it never times a
  single repeated tensor.
* **Eval set**: the dataset's classes are mapped to the model's outputs by
  name (:func:`~edgekit.data.check_labels_match`). With ``--data`` given, a
  class the model does not know is an error; with the default embedded set,
  a model whose labels do not match (an ImageNet model on the animals) is
  evaluated on nothing and the row says why. Preprocessed eval images are kept
  in memory when they fit in ``max_preload_bytes``, else read per batch.
* **Which split**: given the data an artifact was trained on (its manifest's
  ``extra.dataset``), the eval set is the artifact's recorded **test** split
  (:mod:`edgekit.data.recorded`), and a warning says so: the other images were
  trained on or chose the epoch. A dataset with none of its test images (a
  selection split such as ``embedded:validation``) is refused unless
  ``selection_splits`` is set (``--allow-selection-split``). Each accuracy
  records its split in ``extra["split"]``.

Numpy, Pillow and edgekit.data only.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgekit.core.errors import DataError
from edgekit.core.manifest import Manifest
from edgekit.core.specs import PreprocessSpec
from edgekit.data import batch_iter, calibration_indices, check_labels_match, evaluation_indices, load_dataset, preload
from edgekit.data.dataset import Dataset

log = logging.getLogger(__name__)

MIN_DISTINCT_SAMPLES = 64
DEFAULT_MAX_PRELOAD_BYTES = 512 * 1024 * 1024
_SHOWN = 8


@dataclass(eq=False)
class EvalSet:
    """Labelled eval images for one preprocessing, with dataset labels mapped to model outputs."""

    dataset: Dataset
    indices: np.ndarray  # dataset indices, sorted
    spec: PreprocessSpec
    mapping: np.ndarray  # dataset class -> model output index
    key: str  # identifies (dataset, indices, preprocessing): results with equal keys saw the same images
    split: str = "held-out"  # which split the images are: test (recorded), held-out, or all (as asked)
    x: np.ndarray | None = None  # preloaded (N, C, H, W) float32, or None to stream
    y: np.ndarray | None = None
    ids: np.ndarray | None = None

    def batches(self, batch_size: int) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """``(x, model-space labels, dataset indices)`` batches, in index order."""
        if self.x is not None and self.y is not None and self.ids is not None:
            for s in range(0, len(self.y), batch_size):
                yield self.x[s:s + batch_size], self.mapping[self.y[s:s + batch_size]], self.ids[s:s + batch_size]
            return
        for x, y, ids in batch_iter(self.dataset, self.indices, self.spec, batch_size, with_indices=True):
            yield x, self.mapping[y], ids


@dataclass(frozen=True, eq=False)
class ArtifactInputs:
    samples: list[dict[str, np.ndarray]]  # batch-1 feeds for the harness
    eval: EvalSet | None
    accuracy_skipped: str | None


def _spec_key(spec: PreprocessSpec) -> str:
    return json.dumps(spec.to_json(), sort_keys=True)


class DataSource:
    """One dataset for the whole run, prepared per artifact preprocessing (cached by spec)."""

    def __init__(self, data: str | Path | None, *, seed: int = 0, latency_samples: int = MIN_DISTINCT_SAMPLES,
                 eval_size: int | None = None, accuracy: bool = True,
                 max_preload_bytes: int = DEFAULT_MAX_PRELOAD_BYTES, selection_splits: bool = False) -> None:
        self.selection_splits = selection_splits
        self.explicit = data is not None
        self.data = data
        self.dataset = load_dataset(data if data is not None else "embedded")
        if len(self.dataset) == 0:
            raise DataError(f"dataset {self.dataset.name} holds no images", hint="give a folder with images")
        self.seed = seed
        self.latency_samples = latency_samples
        self.eval_size = eval_size
        self.accuracy = accuracy
        self.max_preload_bytes = max_preload_bytes
        self.eval_indices = evaluation_indices(self.dataset.labels, eval_size, seed=seed)
        self.pool_indices = calibration_indices(self.dataset.labels, min(latency_samples, len(self.dataset)),
                                                seed=seed)
        self._pools: dict[str, np.ndarray] = {}
        self._evals: dict[tuple[str, bytes, bytes], EvalSet] = {}
        self._splits: dict[str, tuple[np.ndarray, str]] = {}
        self.used_splits: set[str] = set()
        self.warnings: list[str] = []
        if len(self.pool_indices) < MIN_DISTINCT_SAMPLES:
            self._warn(f"the latency sample pool has only {len(self.pool_indices)} distinct images "
                       f"({self.dataset.name} is small); {MIN_DISTINCT_SAMPLES} or more are recommended")

    def _warn(self, msg: str) -> None:
        if msg not in self.warnings:
            self.warnings.append(msg)
            log.warning("%s", msg)

    def info(self) -> dict[str, Any]:
        ds = self.dataset
        return {
            "name": ds.name, "source": str(self.data) if self.explicit else "embedded (test split)",
            "splits": sorted(self.used_splits),
            "explicit": self.explicit, "n_images": len(ds), "classes": list(ds.classes),
            "eval_n": int(len(self.eval_indices)), "eval_size_asked": self.eval_size,
            "latency_pool_n": int(len(self.pool_indices)), "seed": self.seed,
            "skipped": [[str(s), r] for s, r in ds.skipped[:50]], "n_skipped": len(ds.skipped),
        }

    def _pool(self, spec: PreprocessSpec) -> np.ndarray:
        k = _spec_key(spec)
        if k not in self._pools:
            self._pools.clear()  # one preprocessing at a time: memory stays bounded
            self._pools[k] = preload(self.dataset, self.pool_indices, spec)
        return self._pools[k]

    def check(self, manifest: Manifest, artifact_name: str) -> tuple[np.ndarray | None, str | None]:
        """(dataset class -> model output mapping, None) or (None, why accuracy is skipped).

        Raises :class:`DataError` when ``--data`` was given and its classes do not match the model's.
        """
        ds = self.dataset
        if not self.accuracy:
            return None, "accuracy not requested"
        if not self.explicit and manifest.labels is None:
            return None, (f"the model has no class labels, so the embedded dataset's classes cannot be matched to its "
                          f"{manifest.num_classes} outputs; pass --data with its classes")
        try:
            mapping = check_labels_match(ds.classes, manifest.labels, num_classes=manifest.num_classes)
        except DataError as e:
            if self.explicit:
                raise DataError(f"{artifact_name}: {e.message}", hint=e.hint) from None
            shown = ", ".join(ds.classes[:_SHOWN]) + (", ..." if len(ds.classes) > _SHOWN else "")
            return None, (f"labels do not match the dataset (the embedded {ds.name}: {shown}); "
                          "pass --data with the model's classes to measure accuracy")
        if mapping.size and int(mapping.max()) >= manifest.num_classes:
            raise DataError(f"{artifact_name}: its labels name {len(manifest.labels or ())} classes but the model has "
                            f"{manifest.num_classes} outputs", hint="re-export the artifact")
        return mapping, None

    def eval_split(self, manifest: Manifest, artifact_name: str) -> tuple[np.ndarray, str]:
        """(eval indices, split name) for one artifact: its recorded test split when this is its training data."""
        from edgekit.data.recorded import split_rows, trained_on

        rec = manifest.extra.get("dataset")
        spec = self.data if self.explicit else "embedded"
        if not trained_on(rec, spec):
            return self.eval_indices, "held-out (not the model's training data)" if self.explicit else "test"
        k = json.dumps(rec, sort_keys=True, default=str)
        if k in self._splits:
            return self._splits[k]
        ds = self.dataset
        if self.selection_splits:
            self._warn(f"{artifact_name}: evaluating on all of {ds.name} as asked (--allow-selection-split): its "
                       "training and validation images are included, so accuracy is optimistic")
            self._splits[k] = (self.eval_indices, "all (selection splits included, as asked)")
            return self._splits[k]
        test = split_rows(ds, rec, spec, seed=self.seed)["test"]
        if test.size == 0:
            raise DataError(
                f"{artifact_name}: {ds.name} holds none of the model's test images: every image was trained on or "
                "chose the epoch (a selection split), and is not reported as a result",
                hint="bench on the data the model was trained on (its recorded test split is used) or on other "
                     "held-out images; --allow-selection-split measures it anyway")
        n = self.eval_size
        idx = test[evaluation_indices(ds.labels[test], None if n is None or n >= test.size else n, seed=self.seed)]
        if idx.size != self.eval_indices.size or not np.array_equal(idx, self.eval_indices):
            self._warn(f"{artifact_name}: evaluating on its recorded test split of {ds.name} ({idx.size} images): "
                       f"its other {len(ds) - test.size} images were trained on or chose the epoch")
        self._splits[k] = (idx, "test (the model's recorded split)")
        return self._splits[k]

    def _eval(self, spec: PreprocessSpec, mapping: np.ndarray, idx: np.ndarray | None = None,
              split: str = "held-out") -> EvalSet:
        idx = self.eval_indices if idx is None else idx
        k = (_spec_key(spec), mapping.tobytes(), np.asarray(idx, dtype=np.int64).tobytes())
        if k in self._evals:
            return self._evals[k]
        self._evals.clear()
        ds = self.dataset
        h = hashlib.sha256()
        h.update(f"{ds.name}|{len(ds)}|{'|'.join(ds.classes)}|{k[0]}".encode())
        h.update(np.asarray(idx, dtype=np.int64).tobytes())
        h.update(mapping.tobytes())
        ev = EvalSet(dataset=ds, indices=idx, spec=spec, mapping=mapping, key=h.hexdigest()[:16], split=split)
        nbytes = len(idx) * 3 * spec.input_size[0] * spec.input_size[1] * 4
        if nbytes <= self.max_preload_bytes:
            xs, ys, ids = [], [], []
            for x, y, i in batch_iter(ds, idx, spec, 256, with_indices=True):
                xs.append(x)
                ys.append(y)
                ids.append(i)
            ev.x, ev.y, ev.ids = np.concatenate(xs), np.concatenate(ys), np.concatenate(ids)
        self._evals[k] = ev
        return ev

    def for_artifact(self, manifest: Manifest, artifact_name: str, *, input_name: str,
                     input_dtype: str) -> ArtifactInputs:
        """Latency feeds and the eval set for one artifact (labels checked first, so a bad --data fails early)."""
        mapping, skipped = self.check(manifest, artifact_name)
        pool = self._pool(manifest.preprocess)
        dtype = np.dtype(input_dtype)
        samples = [{input_name: np.ascontiguousarray(pool[i:i + 1].astype(dtype, copy=False))}
                   for i in range(len(pool))]
        ev = None
        if mapping is not None:
            idx, split = self.eval_split(manifest, artifact_name)
            self.used_splits.add(split)
            ev = self._eval(manifest.preprocess, mapping, idx, split)
        if ev is not None and len(ev.indices) < 100:
            self._warn(f"only {len(ev.indices)} eval images: accuracy differences below several points cannot be "
                       "resolved (see the paired CI)")
        return ArtifactInputs(samples=samples, eval=ev, accuracy_skipped=skipped)
