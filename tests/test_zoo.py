"""The model zoo: registry metadata, names, published numbers, builders, CLI."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from click.testing import CliRunner

from edgekit.core.errors import UnknownModelError, UsageError
from edgekit.core.specs import PreprocessSpec
from edgekit.zoo.registry import FAMILIES, ModelEntry, all_names, get_model, list_models

ENTRIES = list_models()
NAMES = [e.name for e in ENTRIES]
TIMM = [e for e in ENTRIES if e.source == "timm"]
TV = [e for e in ENTRIES if e.source == "torchvision"]
COATNETS = [e.name for e in ENTRIES if e.family == "coatnet"]


# -- metadata -----------------------------------------------------------------------


def test_the_zoo_covers_every_required_architecture():
    required = {
        "mobilenetv1_100", "mobilenetv2_100", "tv_mobilenet_v2", "mobilenetv3_large_100",
        "mobilenetv3_small_100", "tv_mobilenet_v3_large", "tv_mobilenet_v3_small",
        "shufflenet_v2_x0_5", "shufflenet_v2_x1_0", "shufflenet_v2_x1_5", "shufflenet_v2_x2_0",
        "squeezenet1_0", "squeezenet1_1", "efficientnet_b0", "efficientnet_b1", "efficientnet_b2",
        "efficientnet_b3", "efficientnet_lite0", "coatnet_0_rw_224", "coatnet_0_224",
    }  # fmt: skip
    assert required <= set(NAMES)
    assert {e.family for e in ENTRIES} == set(FAMILIES)
    assert len(NAMES) == len(set(NAMES))


@pytest.mark.parametrize("entry", ENTRIES, ids=NAMES)
def test_entry_metadata_is_complete(entry: ModelEntry):
    assert entry.family in FAMILIES and entry.source in ("timm", "torchvision") and entry.builder
    assert entry.num_classes == 1000
    pre = entry.preprocess
    assert isinstance(pre, PreprocessSpec) and pre.input_size[0] == pre.input_size[1] >= 224
    assert PreprocessSpec.from_json(pre.to_json()) == pre
    pub = entry.published
    assert isinstance(pub.params, int) and pub.params > 1_000_000
    assert isinstance(pub.macs, int) and 10_000_000 < pub.macs < 10_000_000_000
    assert pub.source and pub.extra["gmacs"] == pytest.approx(pub.macs / 1e9)
    assert (entry.pretrained_tag is not None) == entry.pretrained
    if entry.pretrained:
        assert isinstance(pub.top1, float) and 50.0 < pub.top1 < pub.extra["top5"] < 100.0
    if entry.source == "torchvision" and entry.builder in {e.builder for e in TIMM} | {"mobilenet_v2"}:
        assert entry.name.startswith("tv_")
    d = json.loads(json.dumps(entry.to_json()))
    assert d["name"] == entry.name and d["published"]["params"] == pub.params
    assert d["preprocess"]["resize_size"] == pre.resize_size


def test_registry_imports_without_torch():
    code = (
        "import sys, edgekit.zoo, edgekit.zoo.registry, edgekit.cli.models\n"
        "heavy = [m for m in ('torch', 'timm', 'torchvision') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
        "print(len(edgekit.zoo.list_models()))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert int(out.stdout) == len(ENTRIES)


# -- names ------------------------------------------------------------------------------


@pytest.mark.parametrize("entry", ENTRIES, ids=NAMES)
def test_every_name_and_alias_resolves_case_and_dash_insensitively(entry: ModelEntry):
    for n in entry.names:
        assert get_model(n) is entry
        assert get_model(n.upper().replace("_", "-")) is entry
        assert get_model(f"  {n}  ") is entry
    if entry.pretrained_tag and entry.source == "timm":
        assert get_model(f"{entry.name}.{entry.pretrained_tag}") is entry


@pytest.mark.parametrize(
    ("alias", "name"),
    [
        ("mobilenetv3", "mobilenetv3_large_100"),
        ("mobilenetv3-small", "mobilenetv3_small_100"),
        ("MobileNetV1", "mobilenetv1_100"),
        ("mobilenetv2", "mobilenetv2_100"),
        ("mobilenet_v2", "tv_mobilenet_v2"),
        ("mobilenet_v3_large", "tv_mobilenet_v3_large"),
        ("shufflenetv2", "shufflenet_v2_x1_0"),
        ("squeezenet", "squeezenet1_1"),
        ("efficientnet", "efficientnet_b0"),
        ("coatnet0", "coatnet_0_rw_224"),
        ("coatnet-0", "coatnet_0_rw_224"),
    ],
)
def test_human_aliases(alias: str, name: str):
    assert get_model(alias).name == name


def test_names_do_not_collide():
    norm = [n.lower().replace("-", "_") for n in all_names()]
    assert len(norm) == len(set(norm))


def test_unknown_name_suggests_close_matches():
    with pytest.raises(UnknownModelError) as ei:
        get_model("mobilenetv4")
    e = ei.value
    assert isinstance(e, UsageError) and e.exit_code == 2
    msg = e.one_line()
    assert msg.startswith("unknown model 'mobilenetv4'; did you mean: mobilenetv3")
    assert "mobilenetv2" in msg and msg.endswith("(run 'edgekit models' to list all)")
    assert "squeezenet" in str(pytest.raises(UnknownModelError, get_model, "squeezenet2").value)
    assert "did you mean" not in pytest.raises(UnknownModelError, get_model, "resnet50").value.one_line()
    for bad in ("", "   "):
        pytest.raises(UnknownModelError, get_model, bad)


def test_unknown_tag_names_the_registered_one():
    with pytest.raises(UnknownModelError, match="registered with tag ra_in1k"):
        get_model("efficientnet_b0.ra4_e3600_r224_in1k")


@pytest.mark.parametrize(
    ("pattern", "expected"),
    [
        ("mobilenetv3*", {e.name for e in ENTRIES if e.family == "mobilenetv3"}),
        ("MOBILENETV3-*", {"mobilenetv3_large_100", "mobilenetv3_small_100"}),
        ("squeezenet*", {"squeezenet1_0", "squeezenet1_1"}),
        ("tv_*", {"tv_mobilenet_v2", "tv_mobilenet_v3_large", "tv_mobilenet_v3_small", "tv_efficientnet_b0"}),
        ("shufflenet", {e.name for e in ENTRIES if e.family == "shufflenetv2"}),
        ("coatnet", {"coatnet_0_rw_224", "coatnet_0_224"}),
        ("efficientnet_b[0-1]", {"efficientnet_b0", "efficientnet_b1"}),
        ("*efficientnet_b0", {"efficientnet_b0", "tv_efficientnet_b0"}),
        ("coatnet?", {"coatnet_0_rw_224"}),
        ("nothing*", set()),
    ],
)
def test_list_models_fnmatch_filters(pattern: str, expected: set[str]):
    got = [e.name for e in list_models(pattern)]
    assert set(got) == expected
    assert got == [n for n in NAMES if n in expected]  # registry order


# -- published numbers and preprocessing against the installed libraries -------------------


@pytest.mark.parametrize("entry", TV, ids=[e.name for e in TV])
def test_torchvision_entries_match_the_weight_enum(entry: ModelEntry):
    tvm = pytest.importorskip("torchvision.models", reason="needs the 'torch' extra")
    w = tvm.get_weight(entry.pretrained_tag)
    meta = w.meta
    pub = entry.published
    assert pub.params == meta["num_params"]
    assert pub.macs == round(meta["_ops"] * 1e9)
    assert pub.top1 == meta["_metrics"]["ImageNet-1K"]["acc@1"]
    assert pub.extra["top5"] == meta["_metrics"]["ImageNet-1K"]["acc@5"]
    t = w.transforms()
    pre = entry.preprocess
    assert list(pre.input_size) == [t.crop_size[0]] * 2
    assert pre.resize_size == t.resize_size[0]
    assert str(pre.interpolation) == t.interpolation.value
    assert list(pre.mean) == list(t.mean) and list(pre.std) == list(t.std)


@pytest.mark.parametrize("entry", TIMM, ids=[e.name for e in TIMM])
def test_timm_entries_match_the_pretrained_cfg(entry: ModelEntry):
    timm = pytest.importorskip("timm", reason="needs the 'torch' extra")
    full = f"{entry.builder}.{entry.pretrained_tag}" if entry.pretrained else entry.builder
    cfg = timm.models.get_pretrained_cfg(full)
    pre = entry.preprocess
    assert tuple(cfg.input_size[1:]) == pre.input_size
    assert cfg.crop_pct == pytest.approx(pre.crop_pct)
    assert cfg.interpolation == str(pre.interpolation)
    assert tuple(cfg.mean) == pre.mean and tuple(cfg.std) == pre.std
    assert cfg.num_classes == entry.num_classes
    listed = timm.list_pretrained(f"{entry.builder}.*")
    if entry.pretrained:
        assert full in listed
        assert pre.input_size[0] == entry.published.extra["eval_size"]
    else:
        assert listed == [] and cfg.tag == "untrained"  # e.g. coatnet_0_224: no weights in timm
    assert round(entry.published.params / 1e6, 2) == entry.published.extra["params_m"]


def _check_built(entry: ModelEntry) -> None:
    """Build with random init; exact params, the head, and MACs counted by torch."""
    torch = pytest.importorskip("torch", reason="needs the 'torch' extra")
    from torch.utils.flop_counter import FlopCounterMode

    from edgekit.zoo.builders import build_model, classifier_name, param_count

    model = build_model(entry)
    assert not model.training
    assert param_count(model) == entry.published.params
    head = model.get_submodule(classifier_name(entry))
    assert (getattr(head, "out_features", None) or head.out_channels) == entry.num_classes
    size = entry.preprocess.input_size[0]
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        y = model(torch.zeros(1, 3, size, size))
    assert tuple(y.shape) == (1, entry.num_classes)
    macs = counter.get_total_flops() / 2
    # torchvision's _ops are conv/linear MACs (as counted here); timm's tables (fvcore)
    # also count elementwise ops and round to 0.01 GMACs, so they run a few % higher.
    if entry.source == "torchvision":
        assert macs == pytest.approx(entry.published.macs, rel=0.01, abs=1e6)
    else:
        assert macs == pytest.approx(entry.published.macs, rel=0.07, abs=5e6)


@pytest.mark.parametrize("name", [n for n in NAMES if n not in COATNETS])
def test_built_model_matches_published_params_and_macs(name: str):
    _check_built(get_model(name))


def test_coatnets_build_with_published_params_and_macs():
    for name in COATNETS:
        _check_built(get_model(name))


def test_num_classes_changes_the_head():
    torch = pytest.importorskip("torch", reason="needs the 'torch' extra")
    from edgekit.zoo.builders import build_model

    for name in ("mobilenetv3_small_100", "squeezenet1_1"):
        with torch.no_grad():
            y = build_model(get_model(name), num_classes=7)(torch.zeros(2, 3, 224, 224))
        assert tuple(y.shape) == (2, 7)


# -- CLI --------------------------------------------------------------------------------


def test_models_cmd_prints_the_table():
    from edgekit.cli.models import models_cmd

    res = CliRunner().invoke(models_cmd, [])
    assert res.exit_code == 0, res.output
    for e in ENTRIES:
        assert e.name in res.output
    assert "coatnet0" in res.output and "82.40" in res.output and "27.44" in res.output


def test_models_cmd_json_and_filter():
    from edgekit.cli.models import models_cmd

    res = CliRunner().invoke(models_cmd, ["mobilenetv3*", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert [d["name"] for d in data] == [e.name for e in list_models("mobilenetv3*")]
    assert data[0] == get_model(data[0]["name"]).to_json()
    res = CliRunner().invoke(models_cmd, ["squeezenet*"])
    assert res.exit_code == 0 and "squeezenet1_0" in res.output and "mobilenet" not in res.output


def test_models_cmd_no_match_exits_2_with_suggestions():
    from edgekit.cli.main import cli

    res = CliRunner().invoke(cli, ["models", "mobilenetv4"])
    assert res.exit_code == 2
    assert "no model matches 'mobilenetv4'; did you mean: mobilenetv3" in res.output
    res = CliRunner().invoke(cli, ["models", "zzz*", "--json"])
    assert res.exit_code == 2 and "no model matches 'zzz*'" in res.output
