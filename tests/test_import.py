"""Bring your own model: ``edgekit import`` of a bare ONNX classifier, then bench, quantize and gate (#15.4)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.core.manifest import load_artifact

onnx = pytest.importorskip("onnx", reason="import needs onnx")
pytest.importorskip("onnxruntime", reason="the imported model is run in ONNX Runtime")

from byo_models import bare_classifier  # noqa: E402


@pytest.fixture()
def labels_file(tmp_path) -> Path:
    from edgekit.data.embedded import embedded_class_names

    f = tmp_path / "labels.txt"
    f.write_text("\n".join(embedded_class_names()) + "\n", encoding="utf-8")
    return f


def _ok(args: list[str]):
    r = CliRunner().invoke(cli, args)
    assert r.exit_code == 0, r.output
    return r


def test_bare_onnx_is_imported_benched_quantized_and_gated(tmp_path, labels_file):
    model = bare_classifier(tmp_path / "bare.onnx")
    art = tmp_path / "art"
    _ok(["import", str(model), "--preprocess", "unit", "--labels", str(labels_file), "-o", str(art)])
    a = load_artifact(art)
    m = a.manifest
    assert (m.model, m.family, m.num_classes, m.precision, m.input.name) == ("bare", "imported", 10, "fp32", "image")
    assert m.labels is not None and len(m.labels) == 10 and m.weights.origin == "onnx"
    assert m.preprocess.input_size == (32, 32) and m.preprocess.mean == (0.0, 0.0, 0.0) and m.preprocess.crop_pct == 1.0
    assert m.extra["checks"]["checker"] == "full_check" and m.extra["checks"]["smoke_test"]["status"] == "passed"

    quick = ["-t", "cpu", "--runtime", "ort", "--min-duration", "0.2", "--min-iterations", "20", "--warmup", "0.05",
             "--batch", "1", "--eval-size", "100", "--no-history"]
    _ok(["bench", str(art), *quick, "-o", str(tmp_path / "fp32.json")])
    fp32 = json.loads((tmp_path / "fp32.json").read_text())
    row = fp32["results"][0]
    assert row["status"] == "ok" and row["accuracy"]["n"] == 100  # the labels matched the embedded data

    q = tmp_path / "int8"
    _ok(["quantize", str(art), "--calib", "embedded", "--calib-size", "32", "--eval-size", "100", "-o", str(q)])
    assert load_artifact(q).manifest.precision == "int8"
    _ok(["bench", str(q), *quick, "-o", str(tmp_path / "int8.json")])
    _ok(["gate", str(tmp_path / "fp32.json"), "-b", str(tmp_path / "base.json"), "--update-baseline"])
    r = CliRunner().invoke(cli, ["gate", str(tmp_path / "int8.json"), "-b", str(tmp_path / "base.json"),
                                 "--against", "fp32", "--max-top1-drop", "50", "--json"])
    assert r.exit_code == 0, r.output  # a 50-point budget holds for any INT8 of a 10-class model at 10 % top-1
    verdict = json.loads(r.output)
    assert verdict["passed"] is True and any("bare" in json.dumps(c) for c in verdict["rows"])


def test_predict_on_an_imported_nhwc_model(tmp_path, labels_file):
    model = bare_classifier(tmp_path / "nhwc.onnx", shape=(1, 40, 40, 3))
    art = tmp_path / "art"
    _ok(["import", str(model), "--resize", "46", "--interpolation", "bicubic", "--channel-order", "BGR",
         "--mean", "0.5,0.5,0.5", "--std", "0.25,0.25,0.25", "--labels", str(labels_file), "-o", str(art)])
    pre = load_artifact(art).manifest.preprocess
    assert (pre.layout, pre.input_size, pre.resize_size, str(pre.interpolation), pre.channel_order) == (
        "NHWC", (40, 40), 46, "bicubic", "BGR")
    from edgekit.data.embedded import load_embedded

    img = tmp_path / "x.png"
    load_embedded().image(0).save(img)
    r = _ok(["predict", str(art), str(img), "--top", "3", "--json"])
    top = json.loads(r.output)[0]["top"]
    assert len(top) == 3 and all(t["label"] in load_artifact(art).manifest.labels for t in top)


def test_resize_maps_to_an_exact_crop_pct():
    from edgekit.export.import_onnx import crop_pct_for

    for size, resize in ((224, 256), (240, 274), (299, 342), (32, 32), (380, 384)):
        pct = crop_pct_for((size, size), resize)
        from edgekit.core.specs import PreprocessSpec

        assert PreprocessSpec(input_size=(size, size), crop_pct=pct).resize_size == resize


@pytest.mark.parametrize("case, args, needle", [
    ("dynamic", ["--labels", "L"], "has a dynamic height or width"),
    ("labels", ["--labels", "THREE"], "3 labels given for a model with 10 outputs"),
    ("preset", ["--preprocess", "caffe"], "unknown preprocessing preset 'caffe'"),
    ("mean", ["--mean", "1,2"], "--mean takes three comma-separated numbers"),
    ("broken", [], "onnx.checker rejected"),
])  # fmt: skip
def test_bad_imports_answer_in_one_line_and_write_nothing(tmp_path, labels_file, case, args, needle):
    model = bare_classifier(tmp_path / "m.onnx", shape=(1, 3, "h", "w") if case == "dynamic" else (1, 3, 32, 32))
    if case == "broken":
        m = onnx.load(str(model))
        m.graph.node[0].input[1] = "no_such_weight"
        onnx.save(m, str(model))
    three = tmp_path / "three.txt"
    three.write_text("a\nb\nc\n")
    args = [str(labels_file) if a == "L" else str(three) if a == "THREE" else a for a in args]
    r = CliRunner().invoke(cli, ["import", str(model), "-o", str(tmp_path / "out"), *args])
    assert r.exit_code == 2 and needle in r.output and len(r.output.strip().splitlines()) == 1, r.output
    assert "Traceback" not in r.output and not (tmp_path / "out").exists()


def test_import_api_with_dynamic_size(tmp_path, labels_file):
    import edgekit

    model = bare_classifier(tmp_path / "dyn.onnx", shape=("batch", 3, "h", "w"))
    a = edgekit.import_onnx(model, output=tmp_path / "art", input_size=(36, 36), preset="inception",
                            labels=tuple(labels_file.read_text().split("\n")[:10]))
    assert a.manifest.preprocess.input_size == (36, 36) and a.manifest.preprocess.std == (0.5, 0.5, 0.5)
    x = edgekit.preprocess(a, [np.zeros((50, 60, 3), np.uint8)] * 2)
    assert x.shape == (2, 3, 36, 36)
    preds = edgekit.predict(a, [np.zeros((50, 60, 3), np.uint8)] * 2, top=2)
    assert len(preds) == 2 and preds[0].top == preds[1].top


def test_a_bare_onnx_given_to_bench_or_quantize_points_to_import(tmp_path):
    model = bare_classifier(tmp_path / "m.onnx")
    for args in (["bench", str(model), "-t", "cpu", "--no-history"], ["quantize", str(model), "--calib", "embedded",
                                                                       "-o", str(tmp_path / "q")],
                 ["predict", str(model), str(model)]):
        r = CliRunner().invoke(cli, args)
        assert r.exit_code == 2 and "bare ONNX file" in r.output and f"edgekit import {model}" in r.output, r.output
        assert len(r.output.strip().splitlines()) == 1


def test_prune_of_an_import_says_why_in_one_line(tmp_path, labels_file):
    pytest.importorskip("torch", reason="prune needs the torch extra")
    model = bare_classifier(tmp_path / "m.onnx")
    _ok(["import", str(model), "--labels", str(labels_file), "-o", str(tmp_path / "art")])
    r = CliRunner().invoke(cli, ["prune", str(tmp_path / "art"), "--ratio", "0.3", "-o", str(tmp_path / "p")])
    assert r.exit_code == 2 and "imported from ONNX" in r.output and len(r.output.strip().splitlines()) == 1
