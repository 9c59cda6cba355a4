"""#15.3: offline, a command that may reach a model hub answers in one line within seconds (no retry storm)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytest.importorskip("torch", reason="exporting needs the 'torch' extra")
pytest.importorskip("timm", reason="the timm hub path needs timm")


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then closed)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("args", [
    ["export", "--model", "mobilenetv3_small_100", "-o", "{tmp}/out"],
    ["finetune", "--model", "mobilenetv3_small_100", "--data", "embedded", "--epochs", "1", "-o", "{tmp}/ft"],
])  # fmt: skip
def test_unreachable_hub_answers_in_one_line_quickly(tmp_path, args):
    env = dict(os.environ, HF_ENDPOINT=f"http://127.0.0.1:{_closed_port()}", HF_HOME=str(tmp_path / "hf"),
               TORCH_HOME=str(tmp_path / "torch"), PYTHONPATH=str(Path(__file__).resolve().parents[1]))
    env.pop("HF_HUB_OFFLINE", None)  # the hub must be probed, not skipped by the test environment
    env.pop("HF_HUB_CACHE", None)
    # the control: what starting the interpreter and importing torch/timm costs on this machine right now
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", "import edgekit.cli.main, edgekit.zoo.builders, torch, timm, torchvision"],
                   env=env, check=True, timeout=180)
    startup = time.perf_counter() - t0
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "edgekit.cli.main", *[a.format(tmp=tmp_path) for a in args]],
                          env=env, capture_output=True, text=True, timeout=300)
    elapsed = time.perf_counter() - t0
    assert proc.returncode == 2, proc.stderr[-2000:]
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr  # no retry warnings, no traceback
    assert "could not be loaded offline" in lines[0] and "hub is unreachable" in lines[0] and "127.0.0.1" in lines[0]
    assert "--weights PATH" in lines[0]
    # the old code retried for ~25 s per weight file (two files: ~50 s) on top of the start-up; now the
    # probe adds at most ~1.5 s (the margin absorbs a loaded machine's noise)
    assert elapsed < startup + 12, f"took {elapsed:.1f} s, start-up alone {startup:.1f} s"
    assert not any(p.name.startswith(".") for p in tmp_path.iterdir() if p.name not in ("hf", "torch"))


def test_probe_is_bounded_and_remembered(monkeypatch):
    from edgekit.zoo import hub

    port = _closed_port()
    t0 = time.perf_counter()
    why = hub.unreachable(f"http://127.0.0.1:{port}", timeout_s=0.5)
    assert why is not None and f"127.0.0.1:{port}" in why and time.perf_counter() - t0 < 1.5

    def hang(*a, **k):
        time.sleep(2)
        raise OSError("too late")

    monkeypatch.setattr(hub.socket, "create_connection", hang)  # a resolver or SYN that never answers
    t0 = time.perf_counter()
    assert "no answer in 0.3 s" in hub.unreachable("https://nowhere.example:8443", timeout_s=0.3)
    assert time.perf_counter() - t0 < 1.0
    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        monkeypatch.undo()
        assert hub.unreachable(f"http://127.0.0.1:{srv.getsockname()[1]}") is None
