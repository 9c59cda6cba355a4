"""The typed manifest contract: one lineage step shape, a Precision, typed cross-package ``extra`` keys.

Manifests written before the contract (three lineage shapes, OpenVINO's spelling of the inference
precision) load into it; what is written is the one shape, with the contract keys where they were.
"""

from __future__ import annotations

import json
import pytest

from edgekit.core.errors import ArtifactError
from edgekit.core.lineage import FileRef, LineageStep, ParentRef
from edgekit.core.manifest import Manifest, WeightsInfo, load_artifact
from edgekit.core.specs import Precision, PreprocessSpec, TensorSpec
from edgekit.report.html_sections import _lineage

# the lineage shapes edgekit wrote before the contract, as they appear in edgekit.json files
OLD_BUILD = {"step": "build", "created": "2026-12-01T10:00:00+00:00",
             "parent": {"path": "/a/mnv3", "model_file": "model.onnx", "sha256": "aa", "format": "onnx",
                        "precision": "fp32"},
             "recipe": {"target": "intel-cpu", "batch": 1}, "tool_versions": {"openvino": "2025.1"}}
OLD_PRUNE = {"step": "prune", "ratio": 0.3, "round_to": 8, "global": False, "method": "group", "importance": "l2",
             "parent": "mm", "parent_ref": {"artifact": "/a/ft", "manifest_sha256": "mm", "model_sha256": "bb",
                                            "weights": {"origin": "path"}}, "finetune": None}
OLD_FINETUNE = {"step": "finetune", "base_model": "mobilenetv3_small_100",
                "base_weights": {"origin": "imagenet", "source": None, "sha256": None, "random_init": False},
                "recipe": {"epochs": 4, "img_size": 224}}


def _old_manifest_json(**extra_keys) -> dict:
    m = Manifest(model="m", family="f", source="s", num_classes=2, weights=WeightsInfo(origin="none"),
                 inputs=(TensorSpec("x", (1, 3, 8, 8), "float32", "NCHW"),),
                 outputs=(TensorSpec("y", (1, 2), "float32"),),
                 preprocess=PreprocessSpec(input_size=(8, 8)))
    d = m.to_json()
    d["lineage"] = [OLD_FINETUNE, OLD_PRUNE, OLD_BUILD]
    d["extra"] = {"target": "intel-cpu", **extra_keys}
    return d


def test_old_lineage_shapes_load_into_one_typed_shape():
    ft, pr, bd = (LineageStep.from_json(s) for s in (OLD_FINETUNE, OLD_PRUNE, OLD_BUILD))
    assert (ft.step, ft.parent, ft.recipe) == ("finetune", ParentRef(model="mobilenetv3_small_100",
                                                                     weights=OLD_FINETUNE["base_weights"]),
                                               {"epochs": 4, "img_size": 224})
    assert pr.parent == ParentRef(path="/a/ft", sha256="bb", manifest_sha256="mm", weights={"origin": "path"})
    assert pr.recipe == {"ratio": 0.3, "round_to": 8, "global": False, "method": "group", "importance": "l2",
                         "finetune": None}
    assert bd.parent.precision is Precision.FP32 and bd.tool_versions == {"openvino": "2025.1"}
    for s in (ft, pr, bd):  # written in one shape, read back unchanged
        assert set(s.to_json()) == {"step", "created", "parent", "recipe", "tool_versions"}
        assert LineageStep.from_json(json.loads(json.dumps(s.to_json()))) == s


def test_an_old_manifest_loads_typed_and_is_written_in_the_new_shape(tmp_path):
    d = _old_manifest_json(runtime="openvino", device="CPU", inference_precision="f16",
                           checkpoint={"file": "checkpoint.safetensors", "sha256": "cc", "format": "safetensors",
                                       "architecture": "pruned"},
                           prune_config={"file": "prune_config.json", "sha256": "dd", "build_kwargs": {"a": 1}},
                           build_kwargs={"a": 1}, quantization={"method": "ort"})
    m = Manifest.from_json(d)
    assert m.precision is Precision.FP32 and m.inference_precision is Precision.FP16
    assert (m.runtime, m.device, m.build_kwargs) == ("openvino", "CPU", {"a": 1})
    assert m.checkpoint == FileRef("checkpoint.safetensors", "cc", "safetensors", architecture="pruned")
    assert m.prune_config == FileRef("prune_config.json", "dd", build_kwargs={"a": 1})
    assert m.extra == {"target": "intel-cpu", "quantization": {"method": "ort"}}  # the rest stays untyped
    assert [s.step for s in m.lineage] == ["finetune", "prune", "build"]
    out = m.to_json()
    # the contract keys stay where they were on disk; the precision is spelled the edgekit way
    assert out["extra"]["inference_precision"] == "fp16" and out["extra"]["checkpoint"] == d["extra"]["checkpoint"]
    assert out["extra"]["prune_config"] == d["extra"]["prune_config"] and out["extra"]["runtime"] == "openvino"
    assert all(set(s) == {"step", "created", "parent", "recipe", "tool_versions"} for s in out["lineage"])
    assert Manifest.from_json(json.loads(json.dumps(out))) == m


def test_a_new_manifest_is_typed_from_plain_values():
    d = _old_manifest_json()
    m = Manifest.from_json(d)
    built = Manifest(**{**m.__dict__, "precision": "int8", "extra": {"inference_precision": "f32", "x": 1},
                        "lineage": ({"step": "export", "note": "a test fixture"},)})
    assert built.precision is Precision.INT8 and built.inference_precision is Precision.FP32
    assert built.extra == {"x": 1} and built.lineage == (LineageStep("export", recipe={"note": "a test fixture"}),)


@pytest.mark.parametrize("bad", ["int4", "fp64"])
def test_an_unknown_precision_is_a_malformed_manifest(bad):
    d = _old_manifest_json()
    d["precision"] = bad
    with pytest.raises(ArtifactError, match="malformed"):
        Manifest.from_json(d)


def test_contract_values_of_an_unknown_shape_stay_in_extra():
    m = Manifest.from_json(_old_manifest_json(checkpoint="/tmp/ck.pt", inference_precision="u8"))
    assert m.checkpoint is None and m.inference_precision is None
    assert m.extra["checkpoint"] == "/tmp/ck.pt" and m.extra["inference_precision"] == "u8"


def test_results_render_lineage_of_either_shape():
    """Results keep each artifact's lineage as its manifest's JSON, in the shape of its time."""
    old = _lineage((OLD_FINETUNE, OLD_PRUNE, OLD_BUILD))
    new = _lineage(tuple(LineageStep.from_json(s).to_json() for s in (OLD_FINETUNE, OLD_PRUNE, OLD_BUILD)))
    assert old == new == ("finetune of mobilenetv3_small_100 from imagenet weights [epochs 4, img_size 224] → "
                          "prune from ft [method group] → build from mnv3 (onnx fp32)")


def test_a_written_artifact_round_trips(tmp_path):
    d = _old_manifest_json(inference_precision="bf16")
    art = tmp_path / "a"
    art.mkdir()
    (art / "model.onnx").write_bytes(b"onnx")
    Manifest.from_json(d).with_files(art).write(art)
    m = load_artifact(art).manifest
    assert m.inference_precision is Precision.BF16 and m.lineage[-1].parent.sha256 == "aa"
