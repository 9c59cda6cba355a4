"""The SQLite run history: append, trends, git commit, concurrency, schema version, ``edgekit history``."""

from __future__ import annotations

import json
import multiprocessing
import shutil
import sqlite3
import subprocess
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from edgekit.bench.harness import LatencyResult
from edgekit.bench.results import ArtifactInfo, BenchReport, BenchResult
from edgekit.bench.stats import LatencyStats
from edgekit.cli.main import cli
from edgekit.core.errors import UsageError
from edgekit.history import (
    HistoryStore,
    append_report,
    default_history_path,
    git_commit,
    query_history,
    record_bench_run,
)
from edgekit.runtime.base import RunnerInfo


def make_report(p50_ms: float, *, model: str = "mobilenetv3", target: str = "cpu", created: str = "",
                precisions: tuple[str, ...] = ("fp32", "int8")) -> BenchReport:
    rows, arts = [], []
    for i, prec in enumerate(precisions):
        ms = p50_ms * (1 + i)
        ns = (np.linspace(0.95, 1.05, 200) * ms * 1e6).astype(np.int64)
        lat = LatencyResult(stats=LatencyStats.from_ns(ns), cold_ms=3 * ms, warmup_s=1.0, warmup_iterations=5,
                            duration_s=float(ns.sum()) / 1e9, iterations=200, cut_short=False,
                            n_distinct_samples=64, n_samples_visited=64, seed=0, settings={})
        name = f"{model}-{prec}"
        arts.append(ArtifactInfo(name=name, path=f"/a/{name}", model=model, format="onnx", precision=prec,
                                 model_file="model.onnx", model_sha256=f"{i}" * 64, files={"model.onnx": f"{i}" * 64},
                                 size_bytes=1 << 20, input_shape=(1, 3, 224, 224), input_dtype="float32",
                                 num_classes=10, has_labels=True, weights_origin="checkpoint", preprocess={}))
        rows.append(BenchResult(key=f"{name}/onnxruntime:cpu/{prec}", artifact=name, model=model,
                                runtime="onnxruntime", device="cpu", precision=prec, status="ok",
                                runner=RunnerInfo("onnxruntime", "1.20", "cpu", prec, 2), latency=lat))
    return BenchReport(target={"name": target}, settings={}, environment=None, artifacts=tuple(arts),
                       results=tuple(rows), created=created, edgekit_version="0.1.0", command=("edgekit", "bench"))


def test_append_and_trend_with_change_vs_previous(tmp_path):
    db = tmp_path / "h.sqlite"
    for i, p50 in enumerate((5.0, 5.5, 4.4)):
        append_report(make_report(p50, created=f"2025-01-0{i + 1}T00:00:00+00:00"), db=db, git_commit=f"{i}" * 40)
    append_report(make_report(9.0, model="efficientnet_b0", target="jetson", created="2025-01-02T00:00:00+00:00"),
                  db=db, git_commit=None)
    pts = query_history("latency.p50", db=db, model="mobilenet*", target="cpu")
    fp32 = [p for p in pts if p.precision == "fp32"]
    assert [p.metric for p in fp32] == ["latency_p50_ms"] * 3
    assert [p.git_commit for p in fp32] == ["0" * 40, "1" * 40, "2" * 40]
    assert fp32[0].change is None and fp32[1].previous == pytest.approx(fp32[0].value)
    assert fp32[1].change_pct == pytest.approx(10.0, abs=0.5) and fp32[2].change_pct == pytest.approx(-20.0, abs=0.5)
    int8 = [p for p in pts if p.precision == "int8"]
    assert int8[0].value == pytest.approx(2 * fp32[0].value, rel=0.01)
    last = query_history("latency_p50_ms", db=db, model="mobilenet*", last=1)
    assert len(last) == 2 and all(p.created.startswith("2025-01-03") for p in last)
    jetson = query_history("latency.p50", db=db, target="jetson")
    assert {p.model for p in jetson} == {"efficientnet_b0"} and jetson[0].git_commit is None
    with HistoryStore(db) as store:
        assert store.count_runs() == 4
        files = store.conn.execute("SELECT model_sha256, files FROM results WHERE key LIKE '%int8'").fetchone()
        assert files[0] == "1" * 64 and json.loads(files[1]) == {"model.onnx": "1" * 64}
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert int(store.conn.execute("PRAGMA busy_timeout").fetchone()[0]) >= 10_000
        assert store.conn.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == "1"


def test_git_commit_inside_and_outside_a_repository(tmp_path, monkeypatch):
    if shutil.which("git") is None:
        pytest.skip("git is not installed")
    repo = tmp_path / "repo"
    repo.mkdir()
    run = lambda *a: subprocess.run(["git", *a], cwd=repo, check=True, capture_output=True)  # noqa: E731
    run("init", "-q")
    run("-c", "user.email=t@t", "-c", "user.name=t", "commit", "-q", "--allow-empty", "-m", "x")
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=repo, capture_output=True, text=True).stdout.strip()
    assert git_commit(repo) == head
    outside = tmp_path / "plain"
    outside.mkdir()
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    assert git_commit(outside) is None
    monkeypatch.chdir(repo)
    rid = append_report(make_report(5.0), db=tmp_path / "h.sqlite")  # git_commit=AUTO asks git here
    with HistoryStore(tmp_path / "h.sqlite") as s:
        assert s.conn.execute("SELECT git_commit FROM runs WHERE run_id=?", (rid,)).fetchone()[0] == head
    monkeypatch.setenv("PATH", str(tmp_path / "nothing"))
    assert git_commit(repo) is None  # no git at all


def test_default_path_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKIT_HISTORY", str(tmp_path / "x.sqlite"))
    assert default_history_path() == tmp_path / "x.sqlite"
    monkeypatch.delenv("EDGEKIT_HISTORY")
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    assert default_history_path() == tmp_path / "data" / "edgekit" / "history.sqlite"
    append_report(make_report(5.0), git_commit=None)
    assert (tmp_path / "data" / "edgekit" / "history.sqlite").is_file()


def test_a_failed_append_leaves_nothing_behind(tmp_path):
    db = tmp_path / "h.sqlite"
    with HistoryStore(db) as store:
        store.append(make_report(5.0), git_commit=None, run_id="r1")
        n_metrics = store.conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0]
        with pytest.raises(sqlite3.IntegrityError):
            store.append(make_report(6.0), git_commit=None, run_id="r1")  # the runs insert fails: all rolled back
        assert store.count_runs() == 1
        assert store.conn.execute("SELECT COUNT(*) FROM metrics").fetchone()[0] == n_metrics


def test_newer_schema_and_bad_files_are_refused(tmp_path):
    db = tmp_path / "h.sqlite"
    append_report(make_report(5.0), db=db, git_commit=None)
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value='99' WHERE key='schema_version'")
    con.commit()
    con.close()
    with pytest.raises(UsageError, match="newer than this edgekit"):
        HistoryStore(db)
    junk = tmp_path / "junk.sqlite"
    junk.write_bytes(b"not a database at all" * 100)
    with pytest.raises(UsageError, match="cannot open history database"):
        HistoryStore(junk)
    # what bench calls: a history that cannot be written is a warning, never a failed benchmark
    assert record_bench_run(make_report(5.0), db=junk) is None
    assert record_bench_run(make_report(5.0), db=tmp_path / "ok.sqlite") is not None


def _writer(db: str, report_json: str, worker: int, count: int, barrier) -> None:
    report = BenchReport.from_json(json.loads(report_json))
    barrier.wait()
    for i in range(count):
        append_report(report, db=db, git_commit=f"{worker:02d}{i:038d}", host=f"worker{worker}")


def test_concurrent_writers_do_not_corrupt_the_history(tmp_path):
    db = tmp_path / "h.sqlite"
    text = make_report(5.0).to_json_text()
    # separate processes, each with its own connection; fork where there is one (fast), else spawn
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    barrier = ctx.Barrier(4)
    procs = [ctx.Process(target=_writer, args=(str(db), text, w, 25, barrier)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0, 0, 0, 0]
    con = sqlite3.connect(db)
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert con.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 100
    assert con.execute("SELECT COUNT(DISTINCT git_commit) FROM runs").fetchone()[0] == 100
    assert con.execute("SELECT host, COUNT(*) FROM runs GROUP BY host").fetchall() == [
        (f"worker{w}", 25) for w in range(4)]
    assert con.execute("SELECT COUNT(*) FROM results").fetchone()[0] == 200
    per_run = con.execute("SELECT COUNT(*) FROM metrics GROUP BY run_id").fetchall()
    assert len(per_run) == 100 and len(set(per_run)) == 1  # every run recorded whole
    con.close()


def test_history_command(tmp_path):
    runner = CliRunner()
    db = tmp_path / "h.sqlite"
    r = runner.invoke(cli, ["history", "--db", str(db)])
    assert r.exit_code == 0 and "no history at" in r.output and not db.exists()
    for i, p50 in enumerate((5.0, 6.0)):
        append_report(make_report(p50, created=f"2025-01-0{i + 1}T00:00:00+00:00"), db=db, git_commit="a" * 40)
    r = runner.invoke(cli, ["history", "--db", str(db), "--metric", "latency.p90", "--json"])
    assert r.exit_code == 0, r.output
    pts = json.loads(r.output)
    assert len(pts) == 4 and {p["metric"] for p in pts} == {"latency_p90_ms"}
    second = [p for p in pts if p["precision"] == "fp32"][1]
    assert second["change_pct"] == pytest.approx(20.0, abs=0.5)
    r = runner.invoke(cli, ["history", "--db", str(db), "--model", "mobilenet*", "--last", "1"])
    assert r.exit_code == 0 and "latency_p50_ms" in r.output and "+20.0 %" in r.output
    r = runner.invoke(cli, ["history", "--db", str(db), "--metric", "latency.p9"])
    assert r.exit_code == 2 and "no metric" in r.output and "latency_p90_ms" in r.output
    r = runner.invoke(cli, ["history", "--db", str(db), "--metrics"])
    assert r.exit_code == 0 and "top1" not in r.output.split() and "latency_p99_ms" in r.output.split()
    assert runner.invoke(cli, ["history", "--db", str(db), "--last", "0"]).exit_code == 2


def test_history_path_is_a_directory(tmp_path: Path):
    with pytest.raises(UsageError, match="is a directory"):
        HistoryStore(tmp_path)


def test_history_filters_by_device(tmp_path):
    """A fleet run records each target as its own run (device:NAME); --device shows one device's trend."""
    db = tmp_path / "h.sqlite"
    for i, (target, p50) in enumerate((("cpu", 5.0), ("device:nano-01", 9.0), ("device:rpi5-a", 30.0),
                                       ("device:nano-01", 8.0))):
        append_report(make_report(p50, target=target, created=f"2025-01-0{i + 1}T00:00:00+00:00"), db=db)
    r = CliRunner().invoke(cli, ["history", "--db", str(db), "--device", "nano-01", "--json"])
    assert r.exit_code == 0, r.output
    pts = json.loads(r.output)
    assert {p["target"] for p in pts} == {"device:nano-01"} and len(pts) == 4
    fp32 = [p for p in pts if p["precision"] == "fp32"]
    assert [p["value"] for p in fp32] == pytest.approx([9.0, 8.0], rel=0.01) and fp32[1]["change"] < 0
    r = CliRunner().invoke(cli, ["history", "--db", str(db), "--device", "*", "--json"])
    assert {p["target"] for p in json.loads(r.output)} == {"device:nano-01", "device:rpi5-a"}
    r = CliRunner().invoke(cli, ["history", "--db", str(db), "--device", "a", "--target", "cpu"])
    assert r.exit_code == 2 and "not both" in r.output


def test_bench_records_history_unless_asked_not_to(tmp_path):
    """#15.5: ``edgekit bench`` appends every run to the history that ``edgekit history`` reads."""
    pytest.importorskip("onnx", reason="makes a bare ONNX model")
    pytest.importorskip("onnxruntime", reason="benches in ONNX Runtime")
    from byo_models import imported_artifact

    art = imported_artifact(tmp_path)
    db = tmp_path / "h.sqlite"
    quick = ["bench", str(art), "-t", "cpu", "--runtime", "ort", "--min-duration", "0.1", "--min-iterations", "10",
             "--warmup", "0.05", "--batch", "1", "--no-accuracy", "--history-db", str(db)]
    r = CliRunner().invoke(cli, quick)
    assert r.exit_code == 0, r.output
    assert "recorded in the run history" in r.output
    r = CliRunner().invoke(cli, ["history", "--db", str(db), "--json"])
    points = json.loads(r.output)
    assert r.exit_code == 0 and len(points) == 1 and points[0]["key"].startswith("bare/onnxruntime")
    r = CliRunner().invoke(cli, [*quick, "--no-history"])
    assert r.exit_code == 0 and "recorded in the run history" not in r.output
    assert len(json.loads(CliRunner().invoke(cli, ["history", "--db", str(db), "--json"]).output)) == 1
    # the environment variable the GitHub Actions example sets is where the default goes
    env_db = tmp_path / "env.sqlite"
    r = CliRunner().invoke(cli, quick[:-2], env={"EDGEKIT_HISTORY": str(env_db)})
    assert r.exit_code == 0 and env_db.is_file()
