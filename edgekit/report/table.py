"""The bench report as a rich table for the terminal (the columns of the Markdown table).

On a narrow terminal the least essential columns go first (the runtime's own
timing, cold start, peak RSS, p99, the paired drop, agreement, p90, throughput, CV; never p50, the gate's
default metric, or top-1), so the table never collapses into
ellipses; the artifact column is left out when there is one artifact (the
caption names it). Everything dropped is still in the JSON, CSV and Markdown.
"""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from edgekit.bench.results import BenchReport
from edgekit.report.formats import COLUMNS, header_lines, report_notes, shown_columns, summary_rows

_STATUS_STYLE = {"ok": "green", "unsupported": "yellow", "skipped": "dim", "error": "bold red",
                 "throttled": "bold magenta", "invalid": "bold red"}
_LEFT = ("artifact", "runtime", "precision", "status")
#: dropped in this order when the terminal is too narrow (columns not named here or in _KEEP go right after
#: these); p50 is the gate's default metric and stays, with the row's identity and top-1
_OPTIONAL = ("rt_p50", "temp", "power", "cold", "rss", "p99", "drop", "agreement", "p90", "throughput", "cv")
_KEEP = ("artifact", "runtime", "precision", "status", "p50", "top1")


def _columns(report: BenchReport, rows: list[dict[str, str]], width: int | None) -> list[str]:
    cols = [k for k in shown_columns(rows) if not (k == "artifact" and len(report.artifacts) <= 1)]

    def need(keys: list[str]) -> int:
        return sum(max([len(COLUMNS[k])] + [len(r[k]) for r in rows]) + 3 for k in keys) + 1

    others = [k for k in cols if k not in _OPTIONAL and k not in _KEEP]
    for k in (*_OPTIONAL, *others):
        if width is None or need(cols) <= width:
            break
        if k in cols:
            cols.remove(k)
    return cols


def bench_table(report: BenchReport, *, width: int | None = None) -> Table:
    """One row per result; skipped and unsupported rows point to a numbered note.

    ``width``: the terminal width, to leave out optional columns that would not fit.
    """
    rows = summary_rows(report)
    cols = _columns(report, rows, width)
    table = Table(title=f"edgekit bench: {escape(report.target_name)}", title_justify="left",
                  caption="\n".join(escape(x) for x in header_lines(report)), caption_justify="left")
    for key in cols:
        table.add_column(COLUMNS[key], justify="left" if key in _LEFT else "right",
                         no_wrap=key not in ("artifact", "drop"),
                         min_width=max(len(r[key]) for r in rows) if key in ("precision", "status") and rows else None)
    for r, row in zip(report.results, rows):
        cells = [Text(row[k]) for k in cols]
        cells[cols.index("status")].stylize(_STATUS_STYLE.get(r.status, ""))
        if r.unstable and "cv" in cols:
            cells[cols.index("cv")].stylize("yellow")
        table.add_row(*cells, style="dim" if r.status == "skipped" else None)
    return table


def bench_notes(report: BenchReport) -> list[str]:
    return report_notes(report)
