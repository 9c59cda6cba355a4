"""Faults of remote runs against the real loopback sshd: each one explicit, nothing left on the device.

Setup faults (host key, refused port, bad key, no Python) exit 2 with one line; measurement faults (the bench
killed, timed out, the host interrupted, a tampered artifact) give ``invalid`` rows and exit 1, and leave no
process of the run on the device (checked with pgrep) and no run directory.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest
from click.testing import CliRunner
from sshd import REMOTE_BENCH
from sshd import keygen

from edgekit.cli.main import cli
from edgekit.core.host import HostFacts
from edgekit.remote.devices import Device, add_device, get_device
from edgekit.remote.errors import AuthRefused, DeviceDiskFull, DevicePythonError, HostKeyRefused, HostUnreachable
from edgekit.remote.provision import check_device
from edgekit.remote.ssh import Connection

ROOT = Path(__file__).resolve().parents[1]


def _connect(dev: Device, **kw) -> None:
    with Connection(dev.ssh_target(**kw)) as c:
        assert c.run(["true"], timeout_s=30).returncode == 0


def _variant(name: str, **changes) -> Device:
    dev = replace(get_device("lab"), name=name, **changes)
    add_device(dev, replace_existing=True)
    return dev


def test_unknown_and_changed_host_keys_are_refused(device_registry, tmp_path):
    empty = tmp_path / "known_empty"
    empty.write_text("")
    dev = _variant("lab-newkey", known_hosts=str(empty))
    with pytest.raises(HostKeyRefused, match="unknown"):
        _connect(dev)
    r = CliRunner().invoke(cli, ["devices", "check", "lab-newkey"])
    assert r.exit_code == 2 and "host key" in r.output and "--accept-new-host-key" in r.output
    _connect(dev, accept_new_host_key=True)  # explicit accept-new: trusted and written
    assert "ssh-ed25519" in empty.read_text()
    _connect(dev)  # now known

    other = keygen(tmp_path / "other_host")
    s = get_device("lab")
    wrong = tmp_path / "known_wrong"
    wrong.write_text(f"[127.0.0.1]:{s.port} {' '.join(Path(str(other) + '.pub').read_text().split()[:2])}\n")
    dev = _variant("lab-wrongkey", known_hosts=str(wrong))
    for accept in (False, True):  # a changed key is refused even with accept-new
        with pytest.raises(HostKeyRefused, match="CHANGED"):
            _connect(dev, accept_new_host_key=accept)


def test_refused_port_and_bad_key(device_registry, tmp_path):
    from sshd import free_port

    dev = _variant("lab-closed", port=free_port())
    with pytest.raises(HostUnreachable, match="unreachable"):
        _connect(dev)
    r = CliRunner().invoke(cli, ["bench", "--device", "lab-closed", "--precision", "fp32", str(tmp_path)])
    assert r.exit_code == 2

    bad = keygen(tmp_path / "not_authorized")
    dev = _variant("lab-badkey", identity_file=str(bad))
    with pytest.raises(AuthRefused, match="authentication refused"):
        _connect(dev)
    r = CliRunner().invoke(cli, ["devices", "check", "lab-badkey"])
    assert r.exit_code == 2 and "never asks for or stores a password" in r.output


def test_no_python_or_too_old_or_no_disk_names_the_fix(device_registry):
    _variant("lab-nopython", python="/opt/no-such/python3")
    r = CliRunner().invoke(cli, ["devices", "check", "lab-nopython"])
    assert r.exit_code == 2 and "no /opt/no-such/python3 on the device" in r.output and "--python PATH" in r.output
    old = HostFacts(arch="aarch64", os="Ubuntu 20.04.6 LTS", kernel="", python="3.8.10", disk_free_mb=50_000)
    with pytest.raises(DevicePythonError, match=r"Python 3.8.10.*3.10 or newer.*--python /usr/bin/python3.10"):
        check_device(old, device="orin", python="python3")
    full = replace(old, python="3.10.12", disk_free_mb=200.0, disk_path="/home/nvidia/.cache/edgekit-remote")
    with pytest.raises(DeviceDiskFull, match="only 200 MB free"):
        check_device(full, device="orin", python="python3")


def _cli_subprocess(out: Path, artifact: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "edgekit.cli.main", "bench", "--device", "lab", *REMOTE_BENCH,
                             "-o", str(out), *extra, str(artifact)], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)


def _wait_for_pid(work: Path, timeout_s: float = 120) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        for p in work.glob("runs/*/pid"):
            try:
                return int(p.read_text())
            except (OSError, ValueError):
                pass
        time.sleep(0.1)
    raise AssertionError("the remote bench never started")


def _nothing_left(work: Path) -> None:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        left = subprocess.run(["pgrep", "-f", str(work)], capture_output=True, text=True).stdout.split()
        if not left:
            break
        time.sleep(0.2)
    assert not left, f"processes left on the device: {left}"
    assert list(work.glob("runs/*")) == []


def _invalid(out: Path) -> dict:
    (row,) = json.loads(out.read_text())["results"]
    assert row["status"] == "invalid"
    return row


def test_bench_killed_on_the_device_is_invalid(first_run, device_registry, labelled_artifact, tmp_path):
    _, work = device_registry
    out = tmp_path / "killed.json"
    p = _cli_subprocess(out, labelled_artifact, "--min-duration", "60")
    pid = _wait_for_pid(work)
    time.sleep(1.0)
    os.killpg(pid, signal.SIGKILL)  # the bench's whole process group dies on the device
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    assert "exited 137" in _invalid(out)["reason"] and "exited 137" in err
    _nothing_left(work)


def test_hung_bench_hits_the_wall_clock_timeout(first_run, device_registry, labelled_artifact, tmp_path):
    _, work = device_registry
    out = tmp_path / "hung.json"
    t0 = time.monotonic()
    r = CliRunner().invoke(cli, ["bench", "--device", "lab", *REMOTE_BENCH, "--min-duration", "120", "--timeout", "4",
                                 "-o", str(out), str(labelled_artifact)])
    assert r.exit_code == 1, r.output
    assert "timed out on lab after 4 s" in _invalid(out)["reason"]
    assert time.monotonic() - t0 < 60
    _nothing_left(work)


def test_dropped_connection_mid_run_is_invalid(first_run, device_registry, sshd_server, labelled_artifact, tmp_path):
    _, work = device_registry
    out = tmp_path / "dropped.json"
    p = _cli_subprocess(out, labelled_artifact, "--min-duration", "60")
    _wait_for_pid(work)
    # the server side of the connection dies (as when the device's network goes): its per-connection sshd processes
    conns = subprocess.run(["pgrep", "-P", str(sshd_server.proc.pid)], capture_output=True, text=True).stdout.split()
    assert conns
    for pid in conns:
        os.kill(int(pid), signal.SIGKILL)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 1, err
    reason = _invalid(out)["reason"]
    assert "connection" in reason and ("closed" in reason or "lost" in reason or "dropped" in reason), reason
    _nothing_left(work)


def test_ctrl_c_on_the_host_stops_the_device(first_run, device_registry, labelled_artifact, tmp_path):
    _, work = device_registry
    out = tmp_path / "interrupted.json"
    p = _cli_subprocess(out, labelled_artifact, "--min-duration", "60")
    _wait_for_pid(work)
    os.killpg(p.pid, signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130, err
    assert not out.exists()  # nothing reported, let alone as complete
    _nothing_left(work)


def test_tampered_artifact_is_never_loaded(first_run, device_registry, labelled_artifact, tmp_path):
    _, work = device_registry
    model = Path(first_run[0]["extra"]["remote"]["pushed"][0]["remote"]) / "model.onnx"  # on the loopback device
    original = model.read_bytes()
    try:
        model.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        out = tmp_path / "tampered.json"
        r = CliRunner().invoke(cli, ["bench", "--device", "lab", *REMOTE_BENCH, "-o", str(out), str(labelled_artifact)])
        assert r.exit_code == 1 and "sha256 mismatch" in _invalid(out)["reason"]
    finally:
        model.write_bytes(original)
    _nothing_left(work)


def _python38() -> str | None:
    import glob
    import shutil

    real = sorted(glob.glob(str(Path.home() / ".pyenv/versions/3.8*/bin/python3")))  # not pyenv's shim: it needs env
    return real[0] if real else shutil.which("python3.8")


def test_too_old_python_on_the_device_names_the_fix(device_registry, labelled_artifact):
    """A real Python 3.8 (JetPack 5's) as the device's interpreter: the probe runs there and says it is too old."""
    py38 = _python38()
    if py38 is None:
        print("no Python 3.8 interpreter on this machine")
        pytest.skip("no Python 3.8 interpreter on this machine (python3.8 or ~/.pyenv/versions/3.8*)")
    _variant("lab-py38", python=py38)
    r = CliRunner().invoke(cli, ["devices", "check", "lab-py38", "--json"])
    assert r.exit_code == 1, r.output
    checks = {c["name"]: c for c in json.loads(r.stdout)["checks"]}
    assert not checks["python"]["ok"] and checks["python"]["value"].startswith("3.8")
    assert "--python /usr/bin/python3.10" in checks["python"]["fix"]
    r = CliRunner().invoke(cli, ["bench", "--device", "lab-py38", *REMOTE_BENCH, str(labelled_artifact)])
    assert r.exit_code == 2 and "edgekit needs 3.10 or newer" in r.output


def test_half_pushed_and_half_installed_leftovers_are_never_used(first_run, device_registry, labelled_artifact, tmp_path):
    """What a killed push, install or host leaves (``.tmp-*``, a run directory) is removed by the next run once
    stale, and never taken for a complete one (only sealed objects and ready envs are used)."""
    _, work = device_registry
    stale = [work / "objects" / ".tmp-deadbeef-0000", work / "envs" / ".tmp-deadbeef-0000", work / "runs" / "20200101T000000-dead"]
    fresh = work / "objects" / ".tmp-fresh-0000"  # another run's push in progress: kept
    for d in (*stale, fresh):
        (d / "mnv3").mkdir(parents=True)
        (d / "mnv3" / "model.onnx").write_bytes(b"half")
    for d in stale:
        os.utime(d, (time.time() - 7200, time.time() - 7200))
    r = CliRunner().invoke(cli, ["bench", "--device", "lab", *REMOTE_BENCH, "-o", str(tmp_path / "r.json"),
                                 str(labelled_artifact)])
    assert r.exit_code == 0, r.output
    assert [d.exists() for d in stale] == [False, False, False] and fresh.exists()
    remote = json.loads((tmp_path / "r.json").read_text())["extra"]["remote"]
    assert remote["environment"]["installed"] is False and remote["bytes_put"] == 0
