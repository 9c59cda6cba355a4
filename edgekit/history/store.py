"""A local history of bench runs in SQLite (standard library ``sqlite3``), for trends.

Location: ``db`` when given, else ``$EDGEKIT_HISTORY``, else
``$XDG_DATA_HOME/edgekit/history.sqlite`` (``~/.local/share/edgekit/history.sqlite``).

Safety with concurrent writers (several bench jobs on one machine): the
database runs in WAL mode with a busy timeout, and each report is appended in
one ``BEGIN IMMEDIATE`` transaction, so a report is recorded whole or not at
all and writers queue instead of failing. WAL needs a local file system (not
NFS). The schema version lives in the ``meta`` table; a database written by a
newer edgekit is refused.

Tables: ``runs`` (one row per report: run id, bench time, time recorded, host,
target, git commit, edgekit version, command, CPU model), ``results`` (one
per report row: key, row id, model, runtime, device, precision, status,
artifact hashes) and ``metrics`` (the flat :meth:`BenchResult.metrics`, numbers in
``value``, strings in ``text``).
"""

from __future__ import annotations

import datetime as _dt
import json
import logging
import os
import socket
import sqlite3
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any

from edgekit.bench.results import BenchReport
from edgekit.core.errors import UsageError
from edgekit.gate.baseline import row_ids

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1
BUSY_TIMEOUT_MS = 30_000
GIT_TIMEOUT_S = 5.0
#: ``git_commit=AUTO`` (the default) runs ``git rev-parse HEAD`` in the current directory
AUTO = "auto"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, created TEXT NOT NULL, recorded TEXT NOT NULL, host TEXT, target TEXT,
    git_commit TEXT, edgekit_version TEXT, command TEXT, cpu_model TEXT);
CREATE TABLE IF NOT EXISTS results (
    run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE, key TEXT NOT NULL, row_id TEXT NOT NULL,
    artifact TEXT, model TEXT, runtime TEXT, device TEXT, precision TEXT, status TEXT, model_sha256 TEXT, files TEXT,
    PRIMARY KEY (run_id, key));
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL, key TEXT NOT NULL, metric TEXT NOT NULL, value REAL, text TEXT,
    PRIMARY KEY (run_id, key, metric), FOREIGN KEY (run_id, key) REFERENCES results(run_id, key) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS metrics_by_name ON metrics(metric, run_id);
CREATE INDEX IF NOT EXISTS runs_by_time ON runs(created);
"""


def default_history_path() -> Path:
    env = os.environ.get("EDGEKIT_HISTORY")
    if env:
        return Path(env).expanduser()
    data = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(data) / "edgekit" / "history.sqlite"


def git_commit(cwd: str | os.PathLike[str] | None = None, *, timeout_s: float = GIT_TIMEOUT_S) -> str | None:
    """``git rev-parse HEAD`` in ``cwd``; None outside a repository, without git, or on timeout."""
    try:
        p = subprocess.run(["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True,
                           timeout=timeout_s, check=False)
    except (OSError, subprocess.SubprocessError) as e:
        log.debug("git rev-parse failed: %s", e)
        return None
    sha = p.stdout.strip()
    return sha if p.returncode == 0 and len(sha) in (40, 64) and all(c in "0123456789abcdef" for c in sha) else None


@dataclass(frozen=True)
class HistoryPoint:
    """One value of one metric of one row in one run; ``change`` is vs the previous run of the same series."""

    run_id: str
    created: str
    git_commit: str | None
    host: str | None
    target: str | None
    key: str  # the row id, model/runtime:device/precision (as the gate matches rows)
    model: str | None
    runtime: str | None
    precision: str | None
    metric: str
    value: float | None
    previous: float | None = None

    @property
    def change(self) -> float | None:
        return None if self.value is None or self.previous is None else self.value - self.previous

    @property
    def change_pct(self) -> float | None:
        if self.change is None or not self.previous:
            return None
        return 100 * self.change / abs(self.previous)

    @property
    def series(self) -> tuple[str | None, str]:
        return (self.target, self.key)

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "change": self.change, "change_pct": self.change_pct}


class HistoryStore:
    """A history database. Use as a context manager, or call :meth:`close`."""

    def __init__(self, path: str | os.PathLike[str] | None = None, *, create: bool = True) -> None:
        self.path = Path(path).expanduser() if path is not None else default_history_path()
        if not create and not self.path.is_file():
            raise UsageError(f"no history database at {self.path}", hint="run 'edgekit bench' to record one")
        if self.path.is_dir():
            raise UsageError(f"history path {self.path} is a directory", hint="give a file path (--db FILE)")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
            self.conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            self._init()
        except sqlite3.DatabaseError as e:
            raise UsageError(f"cannot open history database {self.path}: {e}",
                             hint="check the path, or move the file away to start a new history") from None

    def _init(self) -> None:
        mode = self._retry(lambda: self.conn.execute("PRAGMA journal_mode = WAL").fetchone())[0]
        if str(mode).lower() != "wal":
            log.warning("history database %s runs in %s mode, not WAL", self.path, mode)
        self.conn.execute("PRAGMA foreign_keys = ON")
        self.conn.execute("PRAGMA synchronous = NORMAL")
        with self._transaction():
            for stmt in filter(None, (s.strip() for s in _SCHEMA.split(";"))):
                self.conn.execute(stmt)
            row = self.conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                self.conn.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
            elif int(row[0]) > SCHEMA_VERSION:
                raise UsageError(f"history database {self.path} has schema version {row[0]}, newer than this edgekit "
                                 f"reads ({SCHEMA_VERSION})", hint="upgrade edgekit, or use another --db")

    @staticmethod
    def _retry(fn: Any, attempts: int = 50) -> Any:
        """Retry ``fn`` while another process holds a lock the busy handler does not wait for (journal switch)."""
        for i in range(attempts):
            try:
                return fn()
            except sqlite3.OperationalError as e:
                if "locked" not in str(e) or i == attempts - 1:
                    raise
                time.sleep(0.05 * (i + 1))
        return None  # pragma: no cover

    @contextmanager
    def _transaction(self) -> Iterator[None]:
        self._retry(lambda: self.conn.execute("BEGIN IMMEDIATE"))
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def append(self, report: BenchReport, *, git_commit: str | None = AUTO, host: str | None = None,
               run_id: str | None = None) -> str:
        """Record ``report`` in one transaction; returns its run id."""
        rid = run_id or uuid.uuid4().hex
        commit = _git_commit_auto() if git_commit == AUTO else git_commit
        now = _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds")
        env = report.environment
        arts = {a.name: a for a in report.artifacts}
        run_row = (rid, report.created or now, now, host or socket.gethostname(), report.target_name or None, commit,
                   report.edgekit_version or None, json.dumps(list(report.command)),
                   env.cpu_model if env is not None else None)
        results, metrics = [], []
        for row_id, r in row_ids(report).items():
            art = arts.get(r.artifact)
            results.append((rid, r.key, row_id, r.artifact, r.model, r.runtime, r.device, r.precision, r.status,
                            art.model_sha256 if art else None, json.dumps(art.files if art else {}, sort_keys=True)))
            for name, v in r.metrics(art).items():
                if v is None:
                    continue
                if isinstance(v, (bool, int, float)):
                    metrics.append((rid, r.key, name, float(v), None))
                elif hasattr(v, "item"):  # numpy scalar
                    metrics.append((rid, r.key, name, float(v.item()), None))
                else:
                    metrics.append((rid, r.key, name, None, str(v)))
        with self._transaction():
            self.conn.execute("INSERT INTO runs VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)", run_row)
            self.conn.executemany("INSERT INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", results)
            self.conn.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", metrics)
        return rid

    def count_runs(self) -> int:
        return int(self.conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0])

    def metric_names(self) -> list[str]:
        return [r[0] for r in self.conn.execute("SELECT DISTINCT metric FROM metrics ORDER BY metric")]

    def runs(self, *, last: int | None = None) -> list[dict[str, Any]]:
        q = "SELECT run_id, created, recorded, host, target, git_commit, edgekit_version, command, cpu_model FROM runs"
        rows = self.conn.execute(q + " ORDER BY created, recorded").fetchall()
        cols = ("run_id", "created", "recorded", "host", "target", "git_commit", "edgekit_version", "command",
                "cpu_model")
        out = [dict(zip(cols, r)) for r in rows]
        return out[-last:] if last else out

    def series(self, metric: str, *, model: str | None = None, target: str | None = None,
               runtime: str | None = None, precision: str | None = None, last: int | None = None) -> list[HistoryPoint]:
        """Values of ``metric`` (a flat key or an alias like ``latency.p90``) over runs, oldest first.

        ``model``/``target`` are fnmatch patterns; ``last`` keeps the last N runs of each series (target x row id,
        ``model/runtime:device/precision``, so a renamed artifact directory continues its series).
        """
        name = self.resolve_metric(metric)
        rows = self.conn.execute(
            "SELECT r.run_id, r.created, r.git_commit, r.host, r.target, s.row_id, s.model, s.runtime, s.precision, "
            "m.value FROM metrics m JOIN results s ON s.run_id = m.run_id AND s.key = m.key "
            "JOIN runs r ON r.run_id = m.run_id WHERE m.metric = ? ORDER BY r.created, r.recorded", (name,)).fetchall()
        points: list[HistoryPoint] = []
        prev: dict[tuple[str | None, str], float | None] = {}
        for run_id, created, commit, host, tgt, key, mdl, rt, prec, value in rows:
            if model is not None and not fnmatchcase(str(mdl), model):
                continue
            if target is not None and not fnmatchcase(str(tgt), target):
                continue
            if runtime is not None and rt != runtime or precision is not None and prec != precision:
                continue
            p = HistoryPoint(run_id=run_id, created=created, git_commit=commit, host=host, target=tgt, key=key,
                             model=mdl, runtime=rt, precision=prec, metric=name, value=value,
                             previous=prev.get((tgt, key)))
            prev[(tgt, key)] = value
            points.append(p)
        if last:
            by: dict[tuple[str | None, str], list[HistoryPoint]] = {}
            for p in points:
                by.setdefault(p.series, []).append(p)
            keep = {id(p) for ps in by.values() for p in ps[-last:]}
            points = [p for p in points if id(p) in keep]
        return points

    def resolve_metric(self, metric: str) -> str:
        """``latency.p90`` -> ``latency_p90_ms``; ``accuracy.top1`` -> ``top1``; a flat key as is."""
        known = set(self.metric_names())
        flat = metric.strip().replace(".", "_").replace("-", "_")
        for cand in (metric, flat, f"{flat}_ms", flat.removeprefix("accuracy_")):
            if cand in known:
                return cand
        if not known:
            return flat if flat in _KNOWN_FLAT else f"{flat}_ms" if f"{flat}_ms" in _KNOWN_FLAT else flat
        import difflib

        close = difflib.get_close_matches(flat, sorted(known), n=4, cutoff=0.5)
        raise UsageError(f"no metric {metric!r} in the history",
                         hint=f"did you mean {', '.join(close)}?" if close else "see 'edgekit history --metrics'")


_KNOWN_FLAT = {"latency_p50_ms", "latency_p90_ms", "latency_p99_ms", "latency_mean_ms", "top1", "top5", "energy_mj",
               "inferences_per_j", "power_mean_w"}


def _git_commit_auto() -> str | None:
    return git_commit(None)


def append_report(report: BenchReport, *, db: str | os.PathLike[str] | None = None,
                  git_commit: str | None = AUTO, host: str | None = None) -> str:
    """Append ``report`` to the history database (default :func:`default_history_path`); returns the run id.

    ``git_commit``: ``AUTO`` asks git in the current directory (None outside a repository); pass a
    sha or None to set it.
    """
    with HistoryStore(db) as store:
        return store.append(report, git_commit=git_commit, host=host)


def record_bench_run(report: BenchReport, *, db: str | os.PathLike[str] | None = None) -> str | None:
    """Best-effort :func:`append_report` for ``edgekit bench``: the run id, or None after logging a warning.

    A history that cannot be written (read-only home, a newer schema, a full disk) must not fail a
    benchmark whose results were measured and written.
    """
    try:
        return append_report(report, db=db)
    except (UsageError, sqlite3.Error, OSError) as e:
        msg = e.one_line() if isinstance(e, UsageError) else f"{type(e).__name__}: {e}"
        log.warning("not recorded in the run history: %s", msg)
        return None


def query_history(metric: str, *, db: str | os.PathLike[str] | None = None, model: str | None = None,
                  target: str | None = None, last: int | None = None) -> list[HistoryPoint]:
    """The values of ``metric`` over recorded runs (empty when there is no database yet)."""
    path = Path(db).expanduser() if db is not None else default_history_path()
    if not path.is_file():
        return []
    with HistoryStore(path, create=False) as store:
        return store.series(metric, model=model, target=target, last=last)
