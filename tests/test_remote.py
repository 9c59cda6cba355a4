"""``edgekit devices`` and ``edgekit bench --device`` against a real OpenSSH server on 127.0.0.1.

The "device" is the sshd of tests/sshd.py plus a workdir; edgekit provisions its own venv there with only
the onnxruntime extra (from the package index, through pip's cache). Faults are in test_remote_faults.py.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from sshd import REMOTE_BENCH

from edgekit.cli.main import cli
from edgekit.core.host import read_host_facts
from edgekit.core.targets import resolve_target


def remote_bench(artifact: Path, out: Path, *extra: str):
    r = CliRunner().invoke(cli, ["bench", "--device", "lab", *REMOTE_BENCH, "-o", str(out), *extra, str(artifact)])
    return r


def test_devices_add_list_show_remove(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_DEVICES", str(tmp_path / "d.toml"))
    run = CliRunner().invoke
    assert run(cli, ["devices", "add", "orin", "--host", "nvidia@orin.lab:2222", "--target", "jetson-orin-nano"]).exit_code == 0
    r = run(cli, ["devices", "add", "orin", "--host", "x"])
    assert r.exit_code == 2 and "already exists" in r.output
    r = run(cli, ["devices", "show", "orin"])
    shown = json.loads(r.output)
    assert (shown["host"], shown["user"], shown["port"], shown["target"]) == ("orin.lab", "nvidia", 2222, "jetson-orin-nano")
    assert "password" not in (tmp_path / "d.toml").read_text().lower().replace("no passwords", "")
    assert "orin" in json.loads(run(cli, ["devices", "list", "--json"]).output)
    r = run(cli, ["devices", "add", "bad", "--host", "h:notaport"])
    assert r.exit_code == 2 and "port" in r.output
    assert run(cli, ["devices", "add", "x", "--host", "h", "--target", "no-such-profile"]).exit_code == 2
    assert run(cli, ["devices", "remove", "orin"]).exit_code == 0
    r = run(cli, ["devices", "show", "orin"])
    assert r.exit_code == 2 and "edgekit devices add orin" in r.output


def test_project_local_registry(tmp_path, monkeypatch):
    monkeypatch.delenv("EDGEKIT_DEVICES", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    (tmp_path / "proj" / "edgekit-devices.toml").write_text('[devices.pi]\nhost = "pi5.lab"\ntarget = "rpi5"\n')
    monkeypatch.chdir(tmp_path / "proj" / "sub")
    shown = json.loads(CliRunner().invoke(cli, ["devices", "show", "pi"]).output)
    assert shown["host"] == "pi5.lab" and shown["source"].endswith("proj/edgekit-devices.toml")


def test_check_reads_the_device_itself(device_registry):
    r = CliRunner().invoke(cli, ["devices", "check", "lab", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads(r.output)
    facts = read_host_facts()
    assert rep["facts"]["arch"] == facts.arch and rep["facts"]["cpu_model"] == facts.cpu_model
    assert rep["target"] == resolve_target(facts).profile.name
    checks = {c["name"]: c for c in rep["checks"]}
    assert checks["python"]["ok"] and checks["free disk"]["ok"] and "tensorrt (system)" in checks
    _, work = device_registry
    assert (work.stat().st_mode & 0o777) == 0o700


def test_remote_bench_equals_a_local_bench(first_run, labelled_artifact, device_registry):
    from edgekit.bench.runner import BenchOptions, run_bench

    rep, output = first_run
    remote = rep["extra"]["remote"]
    assert remote["environment"]["installed"] and remote["environment"]["extras"] == ["onnxruntime"]
    assert remote["device"] == "lab" and remote["edgekit"]["host"] == remote["edgekit"]["device"]
    assert "progress" in output and "[lab]" in output  # the device's progress streamed live
    # the device's venv: edgekit, onnxruntime, no torch
    env_python = Path(remote["workdir"]) / "envs" / remote["environment"]["key"] / "bin" / "python"
    probe = "import importlib.util as u; print([m for m in ('torch','torchvision','timm','openvino','onnxruntime') if u.find_spec(m)])"
    assert subprocess.run([str(env_python), "-c", probe], capture_output=True, text=True, check=True).stdout.strip() == "['onnxruntime']"
    assert not {"torch", "timm"} & set(remote["versions"]["device"])

    (row,) = rep["results"]
    assert row["status"] == "ok" and row["accuracy"]["n"] > 0
    target = resolve_target(read_host_facts()).profile.name
    assert rep["target"]["name"] == target
    local = run_bench(BenchOptions(target=target, artifacts=(labelled_artifact,), runtimes=("onnxruntime",),
                                   precisions=("fp32",), min_duration_s=0.3, min_iterations=20, warmup_s=0.05,
                                   batch_sizes=(1, 2), seed=3, tier=rep["settings"]["tier"])).to_json()
    (lrow,) = local["results"]
    for k in ("top1", "top5", "macro_f1", "n"):
        assert row["accuracy"][k] == lrow["accuracy"][k]
    assert np.array_equal(row["accuracy"]["predictions"], lrow["accuracy"]["predictions"])
    assert row["accuracy"]["confusion"] == lrow["accuracy"]["confusion"]
    assert rep["settings"]["seed"] == local["settings"]["seed"] == 3
    assert rep["artifacts"][0]["name"] == local["artifacts"][0]["name"]
    assert rep["artifacts"][0]["path"] == str(labelled_artifact)  # host paths in the host's results


def test_second_run_reuses_the_venv_and_the_push(first_run, labelled_artifact, tmp_path):
    out = tmp_path / "again.json"
    r = remote_bench(labelled_artifact, out, "--fetch-engines", str(tmp_path / "engines"))
    assert r.exit_code == 0, r.output
    rep = json.loads(out.read_text())
    remote = rep["extra"]["remote"]
    assert any("no TensorRT row ran on the device" in w for w in rep["warnings"])  # CPU device: nothing device-built
    assert remote["environment"]["installed"] is False
    assert [p["copied"] for p in remote["pushed"]] == [False] and remote["bytes_put"] == 0
    assert remote["timings_s"]["provision_s"] < first_run[0]["extra"]["remote"]["timings_s"]["provision_s"]
    # report and gate read it unchanged
    assert CliRunner().invoke(cli, ["report", str(out)]).exit_code == 0


def test_eval_data_dir_is_pushed_once(first_run, labelled_artifact, tmp_path):
    from edgekit.data.embedded import materialize_imagefolder

    data = materialize_imagefolder(tmp_path / "imgs", split="heldout", per_class=3)
    outs = [tmp_path / f"d{i}.json" for i in range(2)]
    for o in outs:
        r = remote_bench(labelled_artifact, o, "--data", str(data))
        assert r.exit_code == 0, r.output
    first, second = (json.loads(o.read_text()) for o in outs)
    copied = [[p["copied"] for p in rep["extra"]["remote"]["pushed"]] for rep in (first, second)]
    assert copied == [[False, True], [False, False]]
    assert first["results"][0]["accuracy"]["n"] == 30


def test_run_benches_on_the_device(first_run, tmp_path):
    """``edgekit run --device``: the fine-tune and export run here (cached as usual), the bench on the device."""
    pipe = tmp_path / "p.toml"
    from tests.test_pipeline import TINY

    # the pipeline tests' tiny pipeline, FP32 only, on 200 training images
    fp32_only = TINY.split('\n[[recipe]]\nname = "int8-ort"')[0]
    text = fp32_only.replace('name = "tiny"', 'name = "remote-tiny"').replace("train_limit = 400", "train_limit = 200")
    assert 'name = "remote-tiny"' in text and "train_limit = 200" in text and "int8" not in text, text
    pipe.write_text(text)
    r = CliRunner().invoke(cli, ["run", str(pipe), "--device", "lab", "--cache-dir", str(tmp_path / "cache"),
                                 "-o", str(tmp_path / "out"), "--no-history", "--json"])
    assert r.exit_code == 0, r.output
    rep = json.loads((tmp_path / "out" / "results.json").read_text())
    assert rep["extra"]["remote"]["device"] == "lab" and rep["extra"]["remote"]["environment"]["installed"] is False
    assert [row["status"] for row in rep["results"]] == ["ok"] and rep["results"][0]["accuracy"]["n"] == 64
