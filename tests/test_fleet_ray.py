"""``--executor ray``: the same sweeps as test_fleet.py, one Ray actor per device.

One local Ray instance for the whole module (starting one costs seconds): ``num_cpus`` pinned to 2 and one
custom resource per fake device; token authentication off, so nothing is written into the user's home.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edgekit.core.errors import UsageError
from edgekit.pipeline.ray_executor import RayExecutor, resource_name
from tests.test_fleet import DEVICES, TARGETS, assert_exclusive, check_two_device_sweep, overlaps, sweep

ray = pytest.importorskip("ray", reason="the Ray executor needs the 'ray' extra (pip install 'edgekit[ray]')")

pytestmark = pytest.mark.usefixtures("_no_artifact_hashing")
from tests.test_fleet import _no_artifact_hashing  # noqa: E402,F401  (the fixture, used above)

REPO = str(Path(__file__).resolve().parents[1])
FAKE_DEVICES = ["device:a", "device:b", "device:c", "host",  # host: the lane of the local targets
                "device:lab", "device:lab2"]  # the loopback SSH devices


@pytest.fixture(scope="module", autouse=True)
def ray_cluster():
    token = Path.home() / ".ray" / "auth_token"
    had_token = token.exists()
    os.environ["RAY_AUTH_MODE"] = "disabled"
    path = os.pathsep.join(p for p in (REPO, os.environ.get("PYTHONPATH")) if p)
    ray.init(num_cpus=2, resources={resource_name(t): 1 for t in FAKE_DEVICES}, include_dashboard=False,
             log_to_driver=False, runtime_env={"env_vars": {"PYTHONPATH": path, "RAY_AUTH_MODE": "disabled"}})
    yield
    ray.shutdown()
    assert token.exists() == had_token, "the Ray tests left an auth token in the home directory"


def test_two_devices_on_ray_one_actor_each(tmp_path):
    result = sweep(tmp_path, RayExecutor(), DEVICES)
    check_two_device_sweep(tmp_path, result)
    assert result.executor == "ray"
    workers = {r.job.target: r.worker for r in result.records}
    assert all(w.startswith("ray-actor-") for w in workers.values())
    assert str(os.getpid()) not in "".join(workers.values())  # benched in the actors' processes
    assert ray.is_initialized()  # the shared instance is left running for the next test


def test_a_device_lost_mid_sweep_on_ray(tmp_path):
    devices = {"a": {**DEVICES["a"], "die_after": 1}, "b": DEVICES["b"]}
    result = sweep(tmp_path, RayExecutor(), devices)
    assert {r.job.id for r in result.invalid} == {"device:a/m-int8", "device:a/m-int8-b"}
    assert all(r.ok for r in result.records if r.job.target == "device:b")
    assert not overlaps(tmp_path)
    assert_exclusive(result.records)


def test_a_hung_job_is_cancelled_recorded_invalid_and_never_retried(tmp_path):
    devices = {"c": {"delay_s": 20.0}, "b": {**DEVICES["b"], "delay_s": 0.05}}
    result = sweep(tmp_path, RayExecutor(grace_s=0.5), devices, targets=["device:c", "device:b"],
                   timeout_s=0.5)  # the fake ignores the transport timeout: the driver's guard cancels it
    c = [r for r in result.records if r.job.target == "device:c"]
    assert [r.status for r in c] == ["invalid"] * 3
    assert "cancelled: no answer within 1 s (not retried)" in c[0].reason
    assert all("cancelled during m-fp32" in r.reason for r in c[1:])
    assert (tmp_path / "devices" / "c" / "count").read_text() == "1"  # started once, never again
    assert all(r.ok for r in result.records if r.job.target == "device:b")
    # the killed actor gave its device back: the next sweep places a new one there
    again = sweep(tmp_path / "again", RayExecutor(), {"c": {"delay_s": 0.05}}, targets=["device:c"])
    assert not again.invalid


def test_a_cluster_without_the_device_resource_is_refused():
    with pytest.raises(UsageError, match="declares no resource for device:zz") as e:
        RayExecutor().run({"device:zz": [object()]}, lambda t: None, timeout_s=1, on_record=print)  # type: ignore[list-item]
    assert '"edgekit-device:device:zz": 1' in e.value.hint


@pytest.mark.slow
def test_ray_sweep_with_the_local_cpu_target_and_two_devices(tmp_path, export_artifact):
    """cpu benches for real inside its actor (the host is one more exclusive device); the two fakes beside it."""
    from edgekit.bench.results import load_report
    from edgekit.pipeline.devices import BenchSpec
    from edgekit.pipeline.executors import BenchJob
    from edgekit.pipeline.fleet import run_sweep
    from tests.fleet_fakes import FakeFactory, MixedFactory

    art = str(export_artifact("mobilenetv3_small_100", img_size=32))
    spec = BenchSpec(runtimes=("onnxruntime",), batch=(1,), min_duration=0.05, min_iterations=5, warmup=0.0,
                     eval_size=32)
    work = {t: [BenchJob(t, n, art, "mobilenetv3_small_100", "fp32") for n in ("m-a", "m-b")]
            for t in ["cpu", *TARGETS]}
    result = run_sweep(work, output=tmp_path / "out", executor=RayExecutor(), spec=spec, timeout_s=300,
                       factory=MixedFactory(spec, FakeFactory(str(tmp_path / "devices"), DEVICES)))
    assert not result.invalid, [r.reason for r in result.invalid]
    assert_exclusive(result.records)
    assert not overlaps(tmp_path)
    cpu = load_report(tmp_path / "out" / "targets" / "cpu" / "results.json")
    assert [r.status for r in cpu.results] == ["ok", "ok"] and cpu.environment is not None
    assert {r.worker.split("-")[2] for r in result.records if r.job.target == "cpu"} != {str(os.getpid())}


@pytest.mark.slow
def test_a_pipeline_on_ray_runs_its_steps_as_tasks_and_benches_cpu_and_two_devices(tmp_path):
    """--executor ray end to end: the fine-tune and the quantize steps run as Ray tasks into the step cache,
    then the cpu target and two fake devices are benched by their actors; a rerun finds every step cached."""
    from edgekit.pipeline.config import load_pipeline
    from edgekit.pipeline.run import run_pipeline
    from edgekit.pipeline.targets import FleetOptions, bench_spec
    from tests.fleet_fakes import FakeFactory, MixedFactory
    from tests.test_pipeline import TINY

    (tmp_path / "p.toml").write_text(TINY)
    pipe = load_pipeline(tmp_path / "p.toml")
    factory = MixedFactory(bench_spec(pipe, threads=None), FakeFactory(str(tmp_path / "dev"), DEVICES))
    fleet = FleetOptions(targets=("cpu", *TARGETS), executor="ray", sessions=factory)
    res = run_pipeline(pipe, output=tmp_path / "o", cache_root=tmp_path / "c", history=False, fleet=fleet)
    assert [(o.status, o.note) for o in res.outcomes] == [("ran", "on Ray"), ("ran", "on Ray")]
    assert not res.invalid_jobs and set(res.targets) == {"cpu", *TARGETS}
    assert ray.is_initialized()  # the module's instance: the run did not start (or stop) its own
    again = run_pipeline(pipe, output=tmp_path / "o", cache_root=tmp_path / "c", history=False, fleet=fleet)
    assert {o.status for o in again.outcomes} == {"cached"}


@pytest.mark.slow
def test_a_two_device_sweep_over_ssh_on_ray(first_run, device_registry, sshd_server, labelled_artifact, tmp_path,
                                            monkeypatch):
    """The Ray executor on the two loopback SSH devices: each actor drives its device over remote's transport
    (Ray itself only on this host)."""
    from tests.test_fleet import sweep_two_ssh_devices

    targets, result = sweep_two_ssh_devices(RayExecutor(), device_registry, sshd_server, labelled_artifact, tmp_path,
                                            monkeypatch)
    assert all(r.worker.startswith("ray-actor-") for r in result.records)
    for t in targets:
        assert [r.status for r in result.reports[t].results] == ["ok", "ok"]
