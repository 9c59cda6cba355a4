"""#15.6: a target that is not this host is benchmarked there, or explicitly emulated under this host's name;
a missing runtime or provider gives ``unsupported`` rows, never an abort; threads never exceed this host's."""

from __future__ import annotations

import json
import os
import platform
import socket

import pytest
from click.testing import CliRunner

from edgekit.cli.main import cli
from edgekit.core.host import read_host_facts
from edgekit.core.targets import load_target

pytest.importorskip("onnx", reason="makes a bare ONNX model")
pytest.importorskip("onnxruntime", reason="benches in ONNX Runtime")

QUICK = ["--min-duration", "0.1", "--min-iterations", "10", "--warmup", "0.05", "--batch", "1", "--no-accuracy",
         "--no-history"]


@pytest.fixture(scope="module")
def art(tmp_path_factory):
    from byo_models import imported_artifact

    return imported_artifact(tmp_path_factory.mktemp("targets"))


def _not_the_host(name: str) -> None:
    from edgekit.bench.hosting import hardware_mismatch

    if hardware_mismatch(load_target(name), read_host_facts()) is None:
        pytest.skip(f"this host is a {name}: the rule under test is about other hardware")


def test_jetson_profile_elsewhere_gives_unsupported_rows_not_an_abort(art, tmp_path):
    _not_the_host("jetson-orin-nano")
    out = tmp_path / "r.json"
    r = CliRunner().invoke(cli, ["bench", str(art), "-t", "jetson-orin-nano", *QUICK, "-o", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    rows = rep["results"]
    assert rows and all(row["status"] == "unsupported" for row in rows)
    assert all("--emulate" in row["reason"] or "install" in row["reason"] for row in rows)
    assert rep["target"]["name"] != "jetson-orin-nano"  # nothing ran on a Jetson, so nothing carries its name
    # emulated: the CPU provider runs here; TensorRT and the GPU providers say what to install
    r = CliRunner().invoke(cli, ["bench", str(art), "-t", "jetson-orin-nano", "--emulate", *QUICK, "-o", str(out)])
    assert r.exit_code == 0, r.output
    rows = {row["device"]: row for row in json.loads(out.read_text())["results"]}
    assert rows["CPU"]["status"] == "ok"
    assert rows["TensorRT"]["status"] == "unsupported" and "onnxruntime-gpu" in rows["TensorRT"]["reason"]
    trt = [row for row in json.loads(out.read_text())["results"] if row["runtime"] == "tensorrt"]
    if trt:
        assert trt[0]["status"] == "unsupported" and "edgekit[tensorrt]" in trt[0]["reason"]


def test_rpi5_emulated_on_this_host_is_named_after_this_host(art, tmp_path):
    _not_the_host("rpi5")
    out = tmp_path / "r.json"
    r = CliRunner().invoke(cli, ["bench", str(art), "-t", "rpi5", "--emulate", "--runtime", "ort", *QUICK,
                                 "-o", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    host = socket.gethostname()
    assert rep["target"]["name"] != "rpi5" and host in rep["target"]["name"]
    assert rep["target"]["description"].startswith(f"ran on {host}") and "rpi5's settings" in rep["target"]["description"]
    assert any("ran on" in w and "rpi5's settings" in w for w in rep["warnings"])
    assert f"ran on {host}" in r.output
    row = rep["results"][0]
    assert row["status"] == "ok"
    cores = os.cpu_count() or 1
    assert load_target("rpi5").threads == 4
    assert row["runner"]["threads"] <= cores  # the Pi's 4 threads capped at this host's cores
    # without --emulate nothing runs here and the reason says how to get numbers
    r = CliRunner().invoke(cli, ["bench", str(art), "-t", "rpi5", "--runtime", "ort", *QUICK, "-o", str(out)])
    assert r.exit_code == 0, r.output
    row = json.loads(out.read_text())["results"][0]
    assert row["status"] == "unsupported" and "--emulate" in row["reason"] and "--device" in row["reason"]


def test_the_host_profile_keeps_its_name(art, tmp_path):
    arch = platform.machine().lower()
    if arch not in ("x86_64", "amd64", "aarch64", "arm64"):
        pytest.skip(f"the generic cpu profile does not cover {arch}")
    out = tmp_path / "r.json"
    r = CliRunner().invoke(cli, ["bench", str(art), "-t", "cpu", "--runtime", "ort", *QUICK, "-o", str(out)])
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    assert rep["target"]["name"] == "cpu" and rep["target"]["placement"]["mismatch"] is None


# -- #15.7: defaults a user can live with -----------------------------------------------------------------


def test_warmup_is_proportional_to_the_window_and_quick_is_the_default(art, tmp_path):
    from edgekit.bench.runner import QUICK_SWEEP, WARMUP_SHARE, tier_batches

    out = tmp_path / "r.json"
    r = CliRunner().invoke(cli, ["bench", str(art), "-t", "cpu", "--runtime", "ort", "--min-duration", "0.5",
                                 "--no-accuracy", "--no-history", "-o", str(out)])
    assert r.exit_code == 0, r.output
    st = json.loads(out.read_text())["settings"]
    profile = load_target("cpu")
    assert st["tier"] == "quick" and st["warmup_s"] == pytest.approx(min(profile.warmup_s, WARMUP_SHARE * 0.5))
    row = json.loads(out.read_text())["results"][0]
    assert row["latency"]["warmup_s"] < 0.5  # was the profile's fixed 2 s before a 0.5 s window
    assert st["batch_sizes"] == [b for b in profile.batch_sizes if b in QUICK_SWEEP]
    assert st["throughput_min_duration_s"] <= 0.5 and st["eval_size"] == 500
    assert tier_batches("ci", profile.batch_sizes) == tuple(profile.batch_sizes)


def test_bench_model_memory_is_measured_without_torch(tmp_path):
    """--model exports in a child process: torch never loads into the process whose peak RSS is reported."""
    pytest.importorskip("torch", reason="--model exports with the torch extra")
    code = ("import sys, json\n"
            "from edgekit.bench.runner import BenchOptions, run_bench\n"
            "rep = run_bench(BenchOptions(target='cpu', model='mobilenetv3_small_100', weights='none', img_size=64,\n"
            "    runtimes=('ort',), batch_sizes=(1,), accuracy=False, min_duration_s=0.1, min_iterations=10,\n"
            "    warmup_s=0.0, cache_dir=sys.argv[1]))\n"
            "print(json.dumps({'torch': 'torch' in sys.modules, 'status': rep.results[0].status}))\n")
    import subprocess
    import sys

    env = dict(os.environ, PYTHONPATH=str(__import__("pathlib").Path(__file__).resolve().parents[1]))
    p = subprocess.run([sys.executable, "-c", code, str(tmp_path / "cache")], capture_output=True, text=True,
                       env=env, timeout=600)
    assert p.returncode == 0, p.stderr[-2000:]
    assert json.loads(p.stdout.strip().splitlines()[-1]) == {"torch": False, "status": "ok"}


@pytest.mark.slow
def test_one_artifact_on_the_default_tier_answers_well_under_a_minute(art, tmp_path):
    """Every default (no timing flag): the windows, warm-ups and sweep of the quick tier. The model is tiny, so
    what is measured is the protocol's own cost (before: 10 s windows, a fixed 2 s warm-up, a 5-size sweep of
    12 s each per OpenVINO row: ~150 s for the same rows)."""
    import time

    t0 = time.perf_counter()
    r = CliRunner().invoke(cli, ["bench", str(art), "-t", "cpu", "--no-history", "-o", str(tmp_path / "r.json")])
    elapsed = time.perf_counter() - t0
    assert r.exit_code == 0, r.output
    rows = json.loads((tmp_path / "r.json").read_text())["results"]
    assert sum(row["status"] == "ok" for row in rows) >= 2
    assert elapsed < 60, f"default bench took {elapsed:.1f} s"
