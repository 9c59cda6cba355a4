"""#15.9: every command that writes an artifact checks its destination before the work, in one line."""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.core.atomic import check_output_dir, probe_writable
from edgekit.core.errors import OutputError

PROC = Path("/proc")
pytestmark = pytest.mark.skipif(not (PROC / "self").exists(), reason="needs a /proc file system (Linux)")


def test_proc_is_refused_even_for_root():
    # as root, os.access answers "writable" for /proc; only making an entry tells the truth
    with pytest.raises(OutputError, match="does not take new files"):
        check_output_dir(PROC / "edgekit-out")
    with pytest.raises(OutputError):
        probe_writable(PROC / "a" / "b", what="x")


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    pytest.importorskip("onnx", reason="makes a bare ONNX model")
    pytest.importorskip("onnxruntime", reason="checks the imported model")
    from byo_models import imported_artifact

    return imported_artifact(tmp_path_factory.mktemp("dest"))


@pytest.mark.parametrize("args", [
    ["export", "--model", "squeezenet1_1", "--weights", "none", "-o", "{dest}"],
    ["finetune", "--model", "mobilenetv3_small_100", "--data", "embedded", "-o", "{dest}"],
    ["quantize", "{art}", "--calib", "embedded", "-o", "{dest}"],
    ["prune", "{art}", "--ratio", "0.3", "-o", "{dest}"],
    ["build", "{art}", "--target", "cpu", "-o", "{dest}"],
    ["import", "{model}", "-o", "{dest}"],
    ["bench", "{art}", "-t", "cpu", "-o", "{dest}/r.json"],
    ["predict", "{art}", "{img}"],
])  # fmt: skip
def test_unwritable_destination_answers_in_one_line_before_the_work(art, tmp_path, args):
    dest = PROC / "edgekit-dest"
    img = tmp_path / "x.png"
    from edgekit.data.embedded import load_embedded

    load_embedded().image(0).save(img)
    filled = [a.format(dest=dest, art=art, model=art / "model.onnx", img=img) for a in args]
    if args[0] == "predict":  # writes nothing: the control that the same artifact is fine
        r = CliRunner().invoke(cli, filled)
        assert r.exit_code == 0, r.output
        return
    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, filled)
    elapsed = time.perf_counter() - t0
    assert r.exit_code == 2, r.output
    assert "cannot write" in r.output and "/proc" in r.output and "Traceback" not in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1, r.output
    assert elapsed < 30, f"{args[0]} took {elapsed:.1f} s before refusing"
