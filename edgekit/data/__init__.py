"""Datasets and preprocessing without torch: numpy, Pillow and edgekit.core only.

- :func:`load_dataset` turns a ``--data`` value into a :class:`Dataset`;
- :class:`ImageFolder` reads ``root/<class>/<image>``, :class:`ArrayDataset`
  holds arrays in memory (the embedded dataset is one);
- :func:`preprocess_image` / :func:`preprocess_batch` reproduce timm and
  torchvision's eval transform from a :class:`~edgekit.core.specs.PreprocessSpec`;
- :mod:`edgekit.data.sampling` selects calibration / evaluation samples and
  batches them.
"""

from __future__ import annotations

from pathlib import Path

from edgekit.core.errors import DataError
from edgekit.data.dataset import ArrayDataset, Dataset, load_npz
from edgekit.data.embedded import (
    EMBEDDED_NAME,
    SPLITS,
    embedded_class_names,
    load_embedded,
    materialize_imagefolder,
)
from edgekit.data.imagefolder import IMG_EXTENSIONS, ImageFolder, open_rgb
from edgekit.data.preprocess import preprocess_batch, preprocess_image, to_rgb
from edgekit.data.sampling import (
    batch_iter,
    calibration_indices,
    check_labels_match,
    evaluation_indices,
    per_class_indices,
    preload,
)

EMBEDDED = "embedded"


def load_dataset(spec_or_path: str | Path | None, *, split: str = "heldout") -> Dataset:
    """The dataset named by a ``--data`` value.

    - ``None`` or ``"embedded"``: the embedded dataset, split ``split``
      (held-out by default: the honest choice for evaluation);
    - ``"embedded:train"``, ``"embedded:validation"``, ``"embedded:test"`` (alias ``"embedded:heldout"``),
      ``"embedded:all"``: that split;
    - a directory: an :class:`ImageFolder`;
    - an ``.npz`` file with ``images``, ``labels``, ``class_names``: an :class:`ArrayDataset`.

    A directory literally named ``embedded`` is reached as ``./embedded``.
    """
    if spec_or_path is None:
        return load_embedded(split=split)
    if isinstance(spec_or_path, str) and (spec_or_path == EMBEDDED or spec_or_path.startswith(EMBEDDED + ":")):
        _, _, which = spec_or_path.partition(":")
        if which and which not in SPLITS:
            raise DataError(
                f"unknown embedded split {which!r} in --data {spec_or_path!r}",
                hint=f"use embedded, {', '.join(f'embedded:{s}' for s in SPLITS)}, or a folder",
            )
        return load_embedded(split=which or split)
    path = Path(spec_or_path).expanduser()
    if path.is_file() and path.suffix.lower() == ".npz":
        return load_npz(path)
    if path.is_file():
        raise DataError(
            f"--data {path} is a file",
            hint="give a folder laid out as <root>/<class>/<image>, an .npz, or 'embedded'",
        )
    return ImageFolder(path)


__all__ = [
    "EMBEDDED",
    "EMBEDDED_NAME",
    "IMG_EXTENSIONS",
    "ArrayDataset",
    "Dataset",
    "ImageFolder",
    "batch_iter",
    "calibration_indices",
    "check_labels_match",
    "embedded_class_names",
    "evaluation_indices",
    "load_dataset",
    "load_embedded",
    "load_npz",
    "materialize_imagefolder",
    "open_rgb",
    "per_class_indices",
    "preload",
    "preprocess_batch",
    "preprocess_image",
    "to_rgb",
]
