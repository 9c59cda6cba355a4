"""A local SQLite history of bench runs and metric trends (``edgekit history``). Standard library only."""

from __future__ import annotations

from edgekit.history.store import (
    AUTO,
    HistoryPoint,
    HistoryStore,
    append_report,
    default_history_path,
    git_commit,
    query_history,
    record_bench_run,
)

__all__ = ["AUTO", "HistoryPoint", "HistoryStore", "append_report", "default_history_path", "git_commit",
           "query_history", "record_bench_run"]
