"""The bench report as a rich table for the terminal (same columns as the Markdown table)."""

from __future__ import annotations

from rich.markup import escape
from rich.table import Table
from rich.text import Text

from edgekit.bench.results import BenchReport
from edgekit.report.formats import COLUMNS, header_lines, report_notes, summary_rows

_STATUS_STYLE = {"ok": "green", "unsupported": "yellow", "skipped": "dim", "error": "bold red"}
_LEFT = ("artifact", "runtime", "precision", "status")


def bench_table(report: BenchReport) -> Table:
    """One row per result; skipped and unsupported rows point to a numbered note."""
    table = Table(title=f"edgekit bench: {escape(report.target_name)}", title_justify="left",
                  caption="\n".join(escape(x) for x in header_lines(report)), caption_justify="left")
    for key, header in COLUMNS.items():
        table.add_column(header, justify="left" if key in _LEFT else "right",
                         no_wrap=key not in ("artifact", "drop"))
    for r, row in zip(report.results, summary_rows(report)):
        cells = [Text(row[k]) for k in COLUMNS]
        cells[list(COLUMNS).index("status")].stylize(_STATUS_STYLE.get(r.status, ""))
        if r.unstable:
            cells[list(COLUMNS).index("cv")].stylize("yellow")
        table.add_row(*cells, style="dim" if r.status == "skipped" else None)
    return table


def bench_notes(report: BenchReport) -> list[str]:
    return report_notes(report)
