"""The device path is torch-free, proven: ``edgekit bench`` in a fresh venv that has no torch.

A venv without system site-packages gets the core dependencies (numpy, click,
rich, Pillow, onnx; versions pinned by ``constraints.txt``), then edgekit
itself from a copy of this working tree (a regular, non-editable install
without extras, so the wheel's packaged targets and embedded dataset are what
run), then ONE runtime. ``edgekit bench`` then benchmarks an artifact exported
earlier in the session (by the host venv, which has torch). Done twice: with
onnxruntime, then with openvino instead. torch, torchvision and timm are not
importable in that venv at any point.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CONSTRAINTS = ROOT / "constraints.txt"
HEAVY = ("torch", "torchvision", "timm")
BENCH = ("--target", "cpu", "--min-duration", "0.3", "--min-iterations", "20", "--warmup", "0.05", "--batch", "1,2",
         "--json", "--quiet")

pytestmark = pytest.mark.slow


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def _index_url() -> str:
    """The index pip would use: $PIP_INDEX_URL, else pip's configuration, else PyPI."""
    url = os.environ.get("PIP_INDEX_URL")
    if not url:
        p = subprocess.run([sys.executable, "-m", "pip", "config", "get", "global.index-url"], capture_output=True,
                           text=True, check=False, timeout=60)
        url = p.stdout.strip() if p.returncode == 0 and p.stdout.strip() else "https://pypi.org/simple"
    return url


def _index_unreachable() -> str | None:
    """Why the package index cannot be reached (a TCP connection to its host), or None when it can."""
    import socket
    from urllib.parse import urlsplit

    url = _index_url()
    u = urlsplit(url)
    if u.scheme == "file":
        return None
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        socket.create_connection((u.hostname or "", port), timeout=5).close()
    except OSError as e:
        return f"the package index {url} is unreachable ({type(e).__name__}: {e})"
    return None


def _run(argv: list[str], *, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(argv, capture_output=True, text=True, env=_env(), cwd=cwd, timeout=timeout, check=False)
    if p.returncode != 0 and "pip" in argv and "install" in argv and (why := _index_unreachable()):
        pytest.skip(f"this test installs packages into a fresh venv and {why}")  # the precise condition only
    assert p.returncode == 0, f"{' '.join(map(str, argv))} failed ({p.returncode}):\n{p.stdout[-3000:]}\n{p.stderr[-3000:]}"
    return p


def _copy_tree(dst: Path) -> Path:
    """This working tree as git sees it (tracked and untracked, not ignored files), else a filtered copy."""
    try:
        out = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=ROOT,
                             capture_output=True, check=True, timeout=60).stdout
        files = [f for f in out.decode().split("\0") if f]
    except (OSError, subprocess.SubprocessError):
        files = []
    if files:
        for rel in files:
            src = ROOT / rel
            if src.is_file():
                (dst / rel).parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(src, dst / rel)
        return dst
    shutil.copytree(ROOT, dst, ignore=shutil.ignore_patterns(".venv", ".git", "__pycache__", "build", "dist",
                                                                "*.egg-info", ".pytest_cache"))
    return dst


def _importable(py: Path, cwd: Path, modules: tuple[str, ...]) -> list[str]:
    code = f"import importlib.util as u; print(' '.join(m for m in {modules!r} if u.find_spec(m)))"
    return _run([str(py), "-c", code], cwd=cwd).stdout.split()


@pytest.fixture(scope="module")
def device_venv(tmp_path_factory) -> tuple[Path, Path]:
    """(venv python, a work dir outside the source tree) with edgekit and its core dependencies, no runtime."""
    root = tmp_path_factory.mktemp("device")
    venv = root / "venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], capture_output=True, check=True, timeout=300)
    except (OSError, subprocess.SubprocessError) as e:
        print(f"cannot create a venv here: {e}")
        pytest.skip(f"cannot create a venv here ({type(e).__name__}: {e})")
    py = venv / "bin" / "python"
    work = root / "work"
    work.mkdir()
    src = _copy_tree(root / "src")
    pip = [str(py), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS)]
    _run([*pip, "numpy", "click", "rich", "Pillow", "onnx", "setuptools>=68", "wheel"], cwd=work)
    _run([str(py), "-m", "pip", "install", "-q", "--no-build-isolation", "--no-deps", str(src)], cwd=work)
    assert _importable(py, work, HEAVY) == []
    return py, work


def _bench(py: Path, work: Path, artifact: Path, *args: str) -> dict:
    edgekit = py.parent / "edgekit"
    p = _run([str(edgekit), "bench", *BENCH, str(artifact), *args], cwd=work)
    return json.loads(p.stdout)


def test_bench_with_onnxruntime_only(device_venv, export_artifact):
    py, work = device_venv
    artifact = export_artifact("mobilenetv3_small_100", dynamic_batch=True, img_size=64)
    _run([str(py), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), "onnxruntime"], cwd=work)
    assert _importable(py, work, (*HEAVY, "onnxruntime", "openvino")) == ["onnxruntime"]

    rep = _bench(py, work, artifact, "--runtime", "onnxruntime")
    (row,) = rep["results"]
    assert row["status"] == "ok" and row["runtime"] == "onnxruntime" and row["executed_precision"] == "fp32"
    assert row["latency"]["iterations"] >= 20 and row["metrics"]["throughput_b2_sps"] > 0
    assert rep["artifacts"][0]["profile"]["params"] > 0  # params/MACs from the graph, no torch
    assert not set(HEAVY) & set(rep["environment"]["versions"])

    # without --runtime the target's other runtime is a row that says how to install it
    rep = _bench(py, work, artifact, "--precision", "fp32", "--no-accuracy")
    status = {r["runtime"]: (r["status"], r["reason"]) for r in rep["results"]}
    assert status["onnxruntime"][0] == "ok"
    assert status["openvino"][0] == "unsupported" and "pip install 'edgekit[openvino]'" in status["openvino"][1]
    assert _importable(py, work, HEAVY) == []


def test_bench_with_openvino_instead(device_venv, export_artifact):
    py, work = device_venv
    artifact = export_artifact("mobilenetv3_small_100", dynamic_batch=True, img_size=64)
    _run([str(py), "-m", "pip", "uninstall", "-q", "-y", "onnxruntime"], cwd=work)
    _run([str(py), "-m", "pip", "install", "-q", "-c", str(CONSTRAINTS), "openvino"], cwd=work)
    assert _importable(py, work, (*HEAVY, "onnxruntime", "openvino")) == ["openvino"]

    rep = _bench(py, work, artifact, "--runtime", "openvino", "--precision", "fp32")
    (row,) = rep["results"]
    assert row["status"] == "ok" and row["runtime"] == "openvino"
    assert row["runner"]["details"]["inference_precision"] == "f32" and row["latency"]["iterations"] >= 20
    assert [p["batch_size"] for p in row["throughput"]["points"]] == [1, 2]
    assert _importable(py, work, HEAVY) == []
