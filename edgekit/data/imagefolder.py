"""A folder of images, one subfolder per class: ``root/<class>/<image>``.

Layout and ordering follow torchvision's ``ImageFolder``: classes are the
subfolder names sorted, the class index is the position in that order,
images are found recursively (symlinks followed) in sorted order, and a file
is an image when its extension (any case) is in :data:`IMG_EXTENSIONS`.
Two deliberate differences: hidden entries (names starting with ``.``, like
``.ipynb_checkpoints`` or macOS ``._photo.jpg`` resource forks) are ignored
instead of becoming a class or a broken sample, and a bad layout raises
:class:`DataError` with a one-line fix.

Decoding goes through :func:`open_rgb`, the one place an image file is read:
any decoding failure becomes a :class:`DataError` that names the file. Runs
do not stop on a bad file: :func:`edgekit.data.sampling.batch_iter` and
``preload`` skip it and record it in :attr:`ImageFolder.skipped`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np
from PIL import Image

from edgekit.core.errors import DataError
from edgekit.core.specs import PreprocessSpec
from edgekit.data.preprocess import preprocess_image, to_rgb

log = logging.getLogger(__name__)

#: torchvision's IMG_EXTENSIONS
IMG_EXTENSIONS: tuple[str, ...] = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")

_LAYOUT_HINT = "lay the images out as <root>/<class>/<image>, one subfolder per class"


def open_rgb(path: str | os.PathLike[str]) -> Image.Image:
    """Decode the image at ``path`` fully and return it as 8-bit RGB.

    Mode conversion follows :func:`edgekit.data.preprocess.to_rgb` (alpha
    dropped like torchvision's loader, 16-bit scaled by 1/257). EXIF
    orientation is not applied and ICC profiles are ignored, as in torchvision
    and timm, so a model sees the pixels it was trained on. A missing,
    unreadable, corrupt or truncated file raises :class:`DataError` naming it.
    """
    p = Path(path)
    try:
        with Image.open(p) as im:
            im.load()
            rgb = to_rgb(im)
            return im.copy() if rgb is im else rgb
    except DataError as e:
        raise DataError(f"{p}: {e.message}", hint=e.hint) from None
    except (FileNotFoundError, IsADirectoryError, PermissionError) as e:
        raise DataError(f"cannot read image {p}: {e.strerror or e}", hint="check the path and its permissions") from None
    except (MemoryError, RecursionError):
        raise
    except Exception as e:  # noqa: BLE001 - any decoder failure on untrusted bytes is a bad file
        raise DataError(
            f"cannot decode image {p}: {type(e).__name__}: {e}",
            hint="the file is corrupt, truncated or not an image; replace or remove it",
        ) from None


def _is_hidden(name: str) -> bool:
    return name.startswith(".")


def _walk_error(e: OSError) -> None:
    raise DataError(f"cannot list {e.filename}: {e.strerror or e}", hint="check the folder's permissions")


def _class_files(class_dir: Path, extensions: tuple[str, ...]) -> list[Path]:
    found: list[tuple[str, list[str]]] = []
    for dirpath, dirnames, fnames in os.walk(class_dir, followlinks=True, onerror=_walk_error):
        dirnames[:] = sorted(d for d in dirnames if not _is_hidden(d))
        found.append((dirpath, sorted(f for f in fnames if not _is_hidden(f) and f.lower().endswith(extensions))))
    return [Path(d) / f for d, files in sorted(found) for f in files]


def scan_imagefolder(
    root: Path, extensions: tuple[str, ...] = IMG_EXTENSIONS
) -> tuple[tuple[str, ...], list[tuple[Path, int]]]:
    """(classes, samples) of ``root``; raises :class:`DataError` on a bad layout."""
    if not root.exists():
        raise DataError(f"data directory {root} does not exist", hint=f"give an existing folder; {_LAYOUT_HINT}")
    if not root.is_dir():
        raise DataError(f"data path {root} is not a directory", hint=_LAYOUT_HINT)
    try:
        entries = sorted(os.scandir(root), key=lambda e: e.name)
    except OSError as e:
        raise DataError(f"cannot list data directory {root}: {e.strerror or e}", hint="check its permissions") from None
    visible = [e for e in entries if not _is_hidden(e.name)]
    if not visible:
        raise DataError(f"data directory {root} is empty", hint=_LAYOUT_HINT)
    classes = tuple(e.name for e in visible if e.is_dir())
    if not classes:
        loose = sum(1 for e in visible if e.name.lower().endswith(extensions))
        raise DataError(
            f"data directory {root} has no class subfolders ({loose} image file(s) directly inside it)",
            hint=_LAYOUT_HINT,
        )
    samples: list[tuple[Path, int]] = []
    empty: list[str] = []
    for idx, cls in enumerate(classes):
        files = _class_files(root / cls, extensions)
        if not files:
            empty.append(cls)
        samples.extend((f, idx) for f in files)
    if empty:
        shown = ", ".join(empty[:10]) + (f" and {len(empty) - 10} more" if len(empty) > 10 else "")
        raise DataError(
            f"class folder(s) without images in {root}: {shown}",
            hint=f"add images ({' '.join(extensions)}) or remove the empty folders",
        )
    return classes, samples


class ImageFolder:
    """Images in ``root/<class>/<image>``; see the module notes for the rules.

    ``verify=True`` decodes every file up front and moves unreadable ones to
    :attr:`skipped` (slow on large folders; by default bad files are found
    and skipped when first read).
    """

    def __init__(
        self,
        root: str | Path,
        *,
        extensions: Iterable[str] = IMG_EXTENSIONS,
        verify: bool = False,
        name: str | None = None,
    ) -> None:
        self.root = Path(root)
        self.extensions = tuple(e.lower() if e.startswith(".") else f".{e.lower()}" for e in extensions)
        self.name = name or self.root.name or str(self.root)
        self.skipped: list[tuple[Path | str, str]] = []
        self._classes, self.samples = scan_imagefolder(self.root, self.extensions)
        self._labels = np.array([c for _, c in self.samples], dtype=np.int64)
        if verify:
            self.verify()

    def verify(self) -> list[tuple[Path | str, str]]:
        """Decode every image; drop unreadable ones from ``samples`` into ``skipped``."""
        good: list[tuple[Path, int]] = []
        for path, cls in self.samples:
            try:
                open_rgb(path)
            except DataError as e:
                self.skipped.append((path, e.one_line()))
                log.warning("skipping %s: %s", path, e.one_line())
                continue
            good.append((path, cls))
        self.samples = good
        self._labels = np.array([c for _, c in good], dtype=np.int64)
        if not good:
            raise DataError(f"none of the images in {self.root} can be read", hint="see the skipped files in the log")
        return self.skipped

    @property
    def classes(self) -> tuple[str, ...]:
        return self._classes

    @property
    def labels(self) -> np.ndarray:
        return self._labels

    def __len__(self) -> int:
        return len(self.samples)

    def __repr__(self) -> str:
        return f"ImageFolder(root={str(self.root)!r}, n={len(self)}, classes={len(self._classes)})"

    def label(self, i: int) -> int:
        return self.samples[i][1]

    def source(self, i: int) -> Path:
        return self.samples[i][0]

    def image(self, i: int) -> Image.Image:
        return open_rgb(self.samples[i][0])

    def load(self, i: int, spec: PreprocessSpec) -> np.ndarray:
        path = self.samples[i][0]
        img = open_rgb(path)
        try:
            return preprocess_image(img, spec)
        except DataError as e:
            raise DataError(f"{path}: {e.message}", hint=e.hint) from None
