"""The dataset interface shared by ImageFolder and in-memory arrays.

A :class:`Dataset` is anything with labelled images that can be turned into
model input with a :class:`~edgekit.core.specs.PreprocessSpec`. The embedded
dataset (an :class:`ArrayDataset`) and a user's folder of images (an
:class:`~edgekit.data.imagefolder.ImageFolder`) are interchangeable wherever
one is expected: calibration, evaluation, the benchmark's sample pool.
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
from PIL import Image

from edgekit.core.errors import DataError
from edgekit.core.specs import PreprocessSpec
from edgekit.data.preprocess import preprocess_image


@runtime_checkable
class Dataset(Protocol):
    """Labelled images, read one at a time.

    ``skipped`` collects ``(source, reason)`` for samples that could not be
    read; :func:`edgekit.data.sampling.batch_iter` and ``preload`` fill it
    instead of failing the run.
    """

    @property
    def name(self) -> str: ...

    @property
    def skipped(self) -> list[tuple[Path | str, str]]: ...  # read-only: the list is appended to, never replaced

    @property
    def classes(self) -> tuple[str, ...]: ...

    @property
    def labels(self) -> np.ndarray: ...

    def __len__(self) -> int: ...

    def label(self, i: int) -> int: ...

    def source(self, i: int) -> Path | str: ...

    def image(self, i: int) -> Image.Image: ...

    def load(self, i: int, spec: PreprocessSpec) -> np.ndarray: ...


def _readonly(a: np.ndarray) -> np.ndarray:
    a = a.view()
    a.flags.writeable = False
    return a


@dataclass(frozen=True, eq=False)
class ArrayDataset:
    """Images held in memory: ``images`` (N, H, W) or (N, H, W, C) uint8.

    ``labels`` are class indices into ``class_names``; ``ids`` identify each
    image in its source (the index in the embedded dataset, say) and name it
    in reports and in :func:`~edgekit.data.embedded.materialize_imagefolder`.
    The arrays are made read-only.
    """

    images: np.ndarray
    labels: np.ndarray
    class_names: tuple[str, ...]
    name: str = "arrays"
    ids: np.ndarray | None = None
    skipped: list[tuple[Path | str, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        images = np.asarray(self.images)
        labels = np.asarray(self.labels)
        names = tuple(str(c) for c in self.class_names)
        if images.dtype != np.uint8 or images.ndim not in (3, 4):
            raise DataError(
                f"{self.name}: images must be uint8 (N, H, W) or (N, H, W, C), got {images.dtype} {images.shape}",
            )
        if images.ndim == 4 and images.shape[3] not in (1, 3, 4):
            raise DataError(f"{self.name}: images must have 1, 3 or 4 channels, got shape {images.shape}")
        if labels.ndim != 1 or labels.shape[0] != images.shape[0]:
            raise DataError(f"{self.name}: {labels.shape} labels for {images.shape[0]} images")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise DataError(f"{self.name}: labels must be integers, got {labels.dtype}")
        if not names:
            raise DataError(f"{self.name}: no class names")
        if labels.size and (labels.min() < 0 or labels.max() >= len(names)):
            raise DataError(
                f"{self.name}: labels span {labels.min()}..{labels.max()} but there are {len(names)} class names",
            )
        ids = np.arange(len(labels), dtype=np.int64) if self.ids is None else np.asarray(self.ids, dtype=np.int64)
        if ids.shape != labels.shape:
            raise DataError(f"{self.name}: {ids.shape} ids for {labels.shape[0]} images")
        object.__setattr__(self, "images", _readonly(images))
        object.__setattr__(self, "labels", _readonly(labels.astype(np.int64, copy=False)))
        object.__setattr__(self, "class_names", names)
        object.__setattr__(self, "ids", _readonly(ids))

    @property
    def classes(self) -> tuple[str, ...]:
        return self.class_names

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def __repr__(self) -> str:
        return f"ArrayDataset(name={self.name!r}, n={len(self)}, classes={len(self.class_names)})"

    def label(self, i: int) -> int:
        return int(self.labels[i])

    def source(self, i: int) -> str:
        return f"{self.name}#{int(self.ids[i]):05d}"  # type: ignore[index]

    def image(self, i: int) -> Image.Image:
        a = self.images[i]
        if a.ndim == 3 and a.shape[2] == 1:
            a = a[:, :, 0]
        return Image.fromarray(np.ascontiguousarray(a))

    def load(self, i: int, spec: PreprocessSpec) -> np.ndarray:
        return preprocess_image(self.image(i), spec)

    def subset(self, indices: np.ndarray | list[int], *, name: str | None = None) -> ArrayDataset:
        """A new ArrayDataset of the given rows (ids are kept)."""
        idx = np.asarray(indices, dtype=np.int64)
        return ArrayDataset(
            images=self.images[idx],
            labels=self.labels[idx],
            class_names=self.class_names,
            name=name or self.name,
            ids=self.ids[idx],  # type: ignore[index]
        )


def load_npz(path: str | Path, *, name: str | None = None) -> ArrayDataset:
    """Read an ``.npz`` with ``images``, ``labels`` and ``class_names`` (no pickles)."""
    p = Path(path)
    try:
        with np.load(p, allow_pickle=False) as z:
            missing = {"images", "labels", "class_names"} - set(z.files)
            if missing:
                raise DataError(
                    f"{p} lacks the arrays {sorted(missing)}",
                    hint="an image .npz needs 'images' (N,H,W[,C] uint8), 'labels' (N,) and 'class_names'",
                )
            images, labels, names = z["images"], z["labels"], z["class_names"]
            ids = z["ids"] if "ids" in z.files else None
    except DataError:
        raise
    except (OSError, ValueError, EOFError, KeyError, zipfile.BadZipFile) as e:
        raise DataError(f"cannot read {p}: {type(e).__name__}: {e}", hint="give a valid .npz file") from None
    return ArrayDataset(
        images=images,
        labels=labels,
        class_names=tuple(str(c) for c in names.tolist()),
        name=name or p.stem,
        ids=ids,
    )
