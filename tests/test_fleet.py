"""Sweeps over many targets: the default dispatcher (and, in test_fleet_ray.py, Ray) on fake and loopback devices.

Devices here are test doubles (tests/fleet_fakes.py), not SSH: :class:`FakeSession` answers with synthesized
reports and proves exclusivity with a lock file; :class:`LoopbackConnection` has the SSH Connection's interface
on this machine, so the transport adapter (push, ``edgekit bench`` on the "device", fetch, error mapping) runs
for real without sshd. What is not exercised here: OpenSSH itself (see the note in docs/fleet.md).
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from edgekit.bench.results import load_report
from edgekit.pipeline.devices import BenchSpec, SessionFactory, TransportSession
from edgekit.pipeline.executors import BenchJob, ThreadExecutor, make_executor, target_dir
from edgekit.pipeline.fleet import run_sweep
from edgekit.verdict import Outcome
from tests.fleet_fakes import FakeFactory, LoopbackConnect

TARGETS = ["device:a", "device:b"]


def fake_artifacts(root: Path) -> list[tuple[str, str, str]]:
    """(name, model, precision) of three published artifacts; the fake devices need no files."""
    return [("m-fp32", "mnv3", "fp32"), ("m-int8", "mnv3", "int8"), ("m-int8-b", "mnv3", "int8")]


def work_for(targets: list[str], root: Path) -> dict[str, list[BenchJob]]:
    arts = fake_artifacts(root)
    return {t: [BenchJob(t, n, str(root / n), model, prec) for n, model, prec in arts] for t in targets}


@pytest.fixture(autouse=True)
def _no_artifact_hashing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fake artifacts have no files: key the resume state by their name instead of their sha256."""
    import edgekit.pipeline.fleet as fleet

    monkeypatch.setattr(fleet, "_artifact_sha", lambda job: f"sha-of-{job.name}")


def sweep(tmp_path: Path, executor, devices: dict, targets=TARGETS, **kw):
    factory = FakeFactory(str(tmp_path / "devices"), devices)
    kw = {"timeout_s": 30, "budget_pts": 1.0, **kw}
    return run_sweep(work_for(targets, tmp_path), output=tmp_path / "out", factory=factory, executor=executor,
                     spec=BenchSpec(), **kw)


def overlaps(tmp_path: Path) -> list[str]:
    return [line for f in (tmp_path / "devices").glob("*/overlaps") for line in f.read_text().splitlines()]


def assert_exclusive(records) -> None:
    """On each device the jobs ran one after the other: their [start, end] intervals never overlap."""
    by_target: dict[str, list] = {}
    for r in records:
        by_target.setdefault(r.job.target, []).append((r.started_ns, r.ended_ns))
    for spans in by_target.values():
        spans.sort()
        assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:])), spans


def check_two_device_sweep(tmp_path: Path, result) -> None:
    assert not result.invalid and not overlaps(tmp_path)
    assert_exclusive(result.records)
    # devices ran in parallel: some job of b started before the last job of a ended
    a = [r for r in result.records if r.job.target == "device:a"]
    b = [r for r in result.records if r.job.target == "device:b"]
    assert min(r.started_ns for r in b) < max(r.ended_ns for r in a)
    for t in TARGETS:
        rep = load_report(tmp_path / "out" / "targets" / target_dir(t) / "results.json")
        assert rep.target_name == t and len(rep.results) == 3
        # the FP32 reference is attached across the jobs: every INT8 row is paired with the m-fp32 row
        assert all(r.reference == "m-fp32/onnxruntime:cpu/fp32" for r in rep.results)
        assert rep.extra["verdict"]["models"][0]["target"] == t
    ships = {v.target: v.ship for v in result.verdicts}
    assert ships["device:a"].precision == "int8"  # 0.4x the FP32 latency, faithful
    assert ships["device:b"].precision == "fp32"  # INT8 slower there
    (b_v,) = [v for v in result.verdicts if v.target == "device:b"]
    assert {c.outcome for c in b_v.losers} == {Outcome.SLOWER}
    timeline = json.loads((tmp_path / "out" / "targets" / "sweep.json").read_text())
    assert timeline["schema"] == "edgekit.sweep" and len(timeline["jobs"]) == 6


DEVICES = {"a": {"speed": 1.0, "int8_ratio": 0.4}, "b": {"speed": 2.0, "int8_ratio": 1.3}}


def test_two_devices_in_parallel_one_job_at_a_time_each(tmp_path):
    result = sweep(tmp_path, ThreadExecutor(), DEVICES)
    check_two_device_sweep(tmp_path, result)
    assert result.executor == "threads"


def test_a_device_lost_mid_sweep_marks_its_own_rows_invalid(tmp_path):
    devices = {"a": {"speed": 1.0, "int8_ratio": 0.4, "die_after": 1}, "b": DEVICES["b"]}
    result = sweep(tmp_path, ThreadExecutor(), devices)
    bad = {r.job.id: r.reason for r in result.invalid}
    assert set(bad) == {"device:a/m-int8", "device:a/m-int8-b"}  # the first job finished before it went
    assert "device lost" in bad["device:a/m-int8"] and "not run: device:a was lost" in bad["device:a/m-int8-b"]
    assert all(r.ok for r in result.records if r.job.target == "device:b")  # the other device finished
    rep = result.reports["device:a"]
    assert [r.status for r in rep.results] == ["ok", "invalid", "invalid"]
    (v,) = [v for v in result.verdicts if v.target == "device:a"]
    assert {c.outcome for c in v.candidates if c.artifact != "m-fp32"} == {Outcome.INVALID}
    # a rerun redoes exactly the invalid jobs (the device is back)
    (tmp_path / "devices" / "a" / "unplugged").unlink()
    again = sweep(tmp_path, ThreadExecutor(), DEVICES)
    assert set(again.resumed) == {r.job.id for r in result.records if r.ok} and not again.invalid
    assert json.loads((tmp_path / "devices" / "a" / "count").read_text()) == 2 + 2


def test_an_unreachable_device_is_invalid_from_the_start_and_others_finish(tmp_path):
    (tmp_path / "devices" / "a").mkdir(parents=True)
    (tmp_path / "devices" / "a" / "unplugged").touch()
    result = sweep(tmp_path, ThreadExecutor(), DEVICES)
    assert {r.job.target for r in result.invalid} == {"device:a"}
    assert all("device unavailable" in r.reason for r in result.invalid)
    assert result.reports["device:a"].target["description"].startswith("every job invalid")


def test_make_executor_refuses_an_unknown_name():
    from edgekit.core.errors import UsageError

    with pytest.raises(UsageError, match="unknown executor 'dask'"):
        make_executor("dask")


# --- the transport adapter on a loopback "device": the real edgekit bench, pushed and fetched -------------------

@pytest.mark.slow
def test_transport_session_benches_on_a_loopback_device_and_maps_its_errors(tmp_path, export_artifact):
    art = export_artifact("mobilenetv3_small_100", img_size=32)
    spec = BenchSpec(runtimes=("onnxruntime",), batch=(1,), min_duration=0.05, min_iterations=5, warmup=0.0,
                     eval_size=32)
    device = tmp_path / "device"

    def resolve(name: str) -> TransportSession:
        return TransportSession(target=f"device:{name}", spec=spec, connect=LoopbackConnect(str(device)),
                                profile="cpu", workdir=str(device / "work"), python=sys.executable)

    factory = SessionFactory(spec, resolve=resolve)
    job = BenchJob("device:loop", "m-fp32", str(art), "mobilenetv3_small_100", "fp32")
    result = run_sweep({"device:loop": [job]}, output=tmp_path / "out", factory=factory, executor=ThreadExecutor(),
                       spec=spec, timeout_s=300)
    (rec,) = result.records
    assert rec.ok, rec.reason
    assert (device / "work" / "artifacts" / "m-fp32" / "model.onnx").is_file()  # pushed
    rep = result.reports["device:loop"]
    assert rep.target_name == "device:loop" and rep.target["profile_name"] == "cpu"
    assert [r.status for r in rep.results] == ["ok"]
    # a command past its timeout is JobTimedOut (this job invalid), an unplugged device is DeviceLost
    s = resolve("loop")
    s.open()
    with pytest.raises(Exception) as e:
        s._call("sleep", s._conn.run, [sys.executable, "-c", "import time; time.sleep(5)"], timeout_s=0.5)
    assert type(e.value).__name__ == "JobTimedOut"
    (device / "unplugged").touch()
    with pytest.raises(Exception) as e:
        s.bench(job, timeout_s=60)
    assert type(e.value).__name__ == "DeviceLost"


# --- resume after SIGKILL of the host process -------------------------------------------------------------------

SCRIPT = textwrap.dedent("""
    import sys
    from pathlib import Path
    sys.path.insert(0, {repo!r})
    import edgekit.pipeline.fleet as fleet
    fleet._artifact_sha = lambda job: "sha-of-" + job.name
    from edgekit.pipeline.devices import BenchSpec
    from edgekit.pipeline.executors import ThreadExecutor
    from tests.fleet_fakes import FakeFactory
    from tests.test_fleet import DEVICES, TARGETS, work_for
    root = Path({root!r})
    devices = {{k: {{**v, "delay_s": 1.0}} for k, v in DEVICES.items()}}
    fleet.run_sweep(work_for(TARGETS, root), output=root / "out", factory=FakeFactory(str(root / "devices"), devices),
                    executor=ThreadExecutor(), spec=BenchSpec(), timeout_s=30, budget_pts=1.0)
""")


def test_resume_after_sigkill_of_the_host_redoes_only_what_is_missing(tmp_path):
    repo = str(Path(__file__).resolve().parents[1])
    script = tmp_path / "sweep.py"
    script.write_text(SCRIPT.format(repo=repo, root=str(tmp_path)))
    proc = subprocess.Popen([sys.executable, str(script)], cwd=repo, stderr=subprocess.PIPE)
    jobs = tmp_path / "out" / "targets"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list(jobs.glob("*/jobs/*.json"))) >= 2:
                break
            time.sleep(0.02)
        assert proc.poll() is None, f"the sweep ended before the kill: {proc.stderr.read().decode()}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL, (proc.returncode, proc.stderr.read().decode()[-2000:])
    kept = {str(p.relative_to(jobs)) for p in jobs.glob("*/jobs/*.json")}
    assert 2 <= len(kept) < 6 and not (jobs / "sweep.json").exists(), kept
    for f in jobs.glob("*/jobs/*.json"):  # every kept job file is complete (written atomically)
        load_report(f)
    before = {n: int((tmp_path / "devices" / n / "count").read_text()) for n in ("a", "b")}
    result = sweep(tmp_path, ThreadExecutor(), DEVICES)
    assert len(result.resumed) >= 2 and not result.invalid, (result.resumed, [r.reason for r in result.invalid])
    after = {n: int((tmp_path / "devices" / n / "count").read_text()) for n in ("a", "b")}
    # each job counted once overall, except the one(s) the kill interrupted (started, never kept)
    ran_again = sum(after.values()) - sum(before.values())
    assert ran_again == 6 - len(result.resumed), (before, after, result.resumed)
    check_two_device_sweep(tmp_path, result)


# --- the cross-device report, in a real browser ----------------------------------------------------------------

@pytest.mark.slow
def test_cross_device_report_in_headless_chromium(tmp_path):
    from browser import DevTools, ensure_chromium

    from edgekit.report.fleet import comparison, write_fleet_reports

    chromium = ensure_chromium()
    devices = {**DEVICES, "c": {"speed": 0.5, "int8_ratio": 0.5, "die_after": 2}}
    result = sweep(tmp_path, ThreadExecutor(), devices, targets=["device:a", "device:b", "device:c"])
    rows = [("mnv3", name[2:], name) for name, _, _ in fake_artifacts(tmp_path)]  # (model, recipe, artifact)
    paths = write_fleet_reports(result.reports, tmp_path / "out", rows=rows)
    page = Path(paths["html"])
    targets, table = comparison(result.reports, rows)
    assert targets == ["device:a", "device:b", "device:c"] and [r[1] for r in table] == ["fp32", "int8", "int8-b"]
    ships = {c.target: c for _, _, cells in table for c in cells if c.shipped}
    assert set(ships) == {"device:a", "device:b", "device:c"}  # one shipped configuration per target
    with DevTools(chromium) as dt:
        session, log = dt.open(page.resolve().as_uri())
        assert log.loaded and log.requests == [page.resolve().as_uri()], log.requests
        assert log.csp_violations() == [] and log.exceptions == []
        assert dt.evaluate(session, "document.querySelectorAll('section.target').length") == 3
        heads = dt.evaluate(session, "Array.from(document.querySelector('table.comparison').tHead.rows[0].cells)"
                                     ".map(c => c.textContent)")
        assert heads == ["model", "recipe", "device:a", "device:b", "device:c"]
        cells = dt.evaluate(session, "Array.from(document.querySelectorAll('table.comparison tbody tr'))"
                                     ".map(r => Array.from(r.cells).map(c => c.textContent))")
        assert len(cells) == 3
        assert cells[1][2].startswith("★ ship: onnxruntime:cpu int8")  # int8 wins on a
        assert cells[0][3].startswith("★ ship: onnxruntime:cpu fp32")  # fp32 on b: its INT8 is slower
        assert cells[2][4].startswith("invalid")  # c was lost before its third job
        n_ship = dt.evaluate(session, "document.querySelectorAll('table.comparison td.ship').length")
        assert n_ship == 3


def test_remote_bench_session_turns_an_incomplete_device_report_into_an_invalid_job(monkeypatch):
    """The adapter over remote's run_remote_bench (stood in for here: remote is not on this branch): a complete
    report is the job's; one with invalid rows or a transport error is a timed-out, lost or failed job."""
    import dataclasses as dc
    import types

    from edgekit.pipeline.devices import RemoteBenchSession
    from edgekit.pipeline.executors import DeviceLost, JobTimedOut, run_job
    from tests.fleet_fakes import ConnectionDropped
    from tests.test_gate import LAB, latency, predictions, report, row

    ok = report(row(pred=predictions(LAB, wrong=10), labels=LAB, lat=latency(5.0, 0.02), precision="fp32",
                    artifact="m-fp32"))
    outcome: dict = {}

    def run_remote_bench(options, remote):  # noqa: ANN001, ANN202 - remote's signature
        outcome["options"], outcome["remote"] = options, remote
        if isinstance(outcome.get("next"), BaseException):
            raise outcome["next"]
        return outcome.get("next", ok)

    fake = types.ModuleType("edgekit.remote.remote_bench")
    fake.run_remote_bench = run_remote_bench
    fake.RemoteOptions = lambda device, timeout_s: {"device": device, "timeout_s": timeout_s}
    monkeypatch.setitem(sys.modules, "edgekit.remote", types.ModuleType("edgekit.remote"))
    monkeypatch.setitem(sys.modules, "edgekit.remote.remote_bench", fake)
    device = types.SimpleNamespace(name="nano-01", target="jetson-orin-nano")
    s = RemoteBenchSession("device:nano-01", BenchSpec(eval_size=64), device)
    job = BenchJob("device:nano-01", "m-fp32", "/a/m-fp32", "m", "fp32")
    assert s.bench(job, timeout_s=99) is ok
    assert outcome["options"].target == "jetson-orin-nano" and outcome["options"].eval_size == 64
    assert outcome["remote"]["timeout_s"] == 99
    lost = dc.replace(ok, results=tuple(dc.replace(r, status="invalid", reason="the connection to nano-01 closed "
                                                   "during the bench (process group killed)") for r in ok.results))
    for nxt, kind in ((lost, DeviceLost), (dc.replace(lost, results=tuple(dc.replace(
            r, reason="timed out on nano-01 after 99 s") for r in lost.results)), JobTimedOut),
                      (ConnectionDropped("nano-01: connection closed"), DeviceLost)):
        outcome["next"] = nxt
        with pytest.raises(kind):
            s.bench(job, timeout_s=99)
    rec = run_job(s, job, timeout_s=99, worker="t")
    assert rec.status == "invalid" and rec.device_lost and "connection closed" in rec.reason


def test_local_targets_share_the_host_lane_and_never_bench_at_the_same_time(tmp_path):
    """cpu and intel-cpu are both this machine: one lane, one bench at a time; the device beside runs in parallel."""
    from edgekit.pipeline.executors import lane_of

    result = sweep(tmp_path, ThreadExecutor(), {"host": {"delay_s": 0.1}, "a": {"delay_s": 0.1}},
                   targets=["cpu", "intel-cpu", "device:a"])
    assert not result.invalid and not overlaps(tmp_path)
    assert (tmp_path / "devices" / "host" / "count").read_text() == "6"  # both local targets' jobs, one lane
    spans = sorted((r.started_ns, r.ended_ns) for r in result.records if lane_of(r.job.target) == "host")
    assert len(spans) == 6 and all(a[1] <= b[0] for a, b in zip(spans, spans[1:]))
    assert {r.worker for r in result.records if r.job.target in ("cpu", "intel-cpu")} == {"edgekit-host"}
    assert set(result.reports) == {"cpu", "intel-cpu", "device:a"}


# --- over real SSH: two registered devices on the loopback sshd (remote's fixtures) ------------------------------

def two_ssh_devices(device_registry, sshd_server, tmp_path, monkeypatch) -> list[str]:
    """'lab' and 'lab2': two registry entries on the loopback sshd (one workdir: the venv is provisioned once,
    each remote run has its own run directory), in a registry of this test's own."""
    from click.testing import CliRunner

    from edgekit.cli.main import cli

    reg, work = device_registry
    mine = tmp_path / "devices.toml"
    mine.write_text(Path(reg).read_text())
    monkeypatch.setenv("EDGEKIT_DEVICES", str(mine))
    s = sshd_server
    r = CliRunner().invoke(cli, ["devices", "add", "lab2", "--host", f"{s.user}@127.0.0.1:{s.port}",
                                 "--workdir", str(work), "--ssh-config", str(s.ssh_config),
                                 "--identity", str(s.client_key), "--known-hosts", str(s.known_hosts)])
    assert r.exit_code == 0, r.output
    return ["device:lab", "device:lab2"]


SSH_SPEC = BenchSpec(runtimes=("onnxruntime",), precisions=("fp32",), batch=(1,), min_duration=0.3,
                     min_iterations=20, warmup=0.05, eval_size=64, seed=3)


@pytest.mark.slow
def sweep_two_ssh_devices(executor, device_registry, sshd_server, labelled_artifact, tmp_path, monkeypatch):
    """Two jobs on each of two loopback SSH devices through ``executor``; every job valid, one at a time per
    device. Returns (the device names, the sweep result)."""
    from edgekit.pipeline.fleet import plan_jobs

    targets = two_ssh_devices(device_registry, sshd_server, tmp_path, monkeypatch)
    work = plan_jobs(targets, [("m-a", Path(labelled_artifact)), ("m-b", Path(labelled_artifact))])
    result = run_sweep(work, output=tmp_path / "out", factory=SessionFactory(SSH_SPEC), executor=executor,
                       spec=SSH_SPEC, timeout_s=600)
    assert not result.invalid, [r.reason for r in result.invalid]
    assert_exclusive(result.records)
    return targets, result


def test_a_two_device_sweep_over_ssh(first_run, device_registry, sshd_server, labelled_artifact, tmp_path,
                                     monkeypatch):
    """The default executor, two loopback SSH devices: each benches over remote's transport (probe, push,
    edgekit bench under the device agent, fetch); results per device, one job at a time per device."""
    from edgekit.pipeline.fleet import plan_jobs

    monkeypatch.setattr("edgekit.pipeline.fleet._artifact_sha", lambda job: f"sha-of-{job.name}")
    targets, result = sweep_two_ssh_devices(ThreadExecutor(), device_registry, sshd_server, labelled_artifact,
                                            tmp_path, monkeypatch)
    for t in targets:
        rep = result.reports[t]
        assert rep.target_name == t and [r.status for r in rep.results] == ["ok", "ok"]
        assert all(r.accuracy is not None for r in rep.results)
    # a device that is gone (its host unreachable) marks its own rows invalid; the other finishes
    from click.testing import CliRunner

    from edgekit.cli.main import cli

    r = CliRunner().invoke(cli, ["devices", "add", "gone", "--host", "nobody@127.0.0.1:9", "--workdir",
                                 str(tmp_path / "w")])
    assert r.exit_code == 0, r.output
    work = plan_jobs(["device:gone", "device:lab"], [("m-a", Path(labelled_artifact))])
    result = run_sweep(work, output=tmp_path / "out2", factory=SessionFactory(SSH_SPEC), executor=ThreadExecutor(),
                       spec=SSH_SPEC, timeout_s=600)
    assert [r.job.target for r in result.invalid] == ["device:gone"] and "device lost" in result.invalid[0].reason
    assert [r.status for r in result.reports["device:lab"].results] == ["ok"]
