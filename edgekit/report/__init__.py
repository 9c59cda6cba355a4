"""Reports of edgekit results: the rich terminal table, CSV and Markdown (torch-free)."""

from __future__ import annotations

from edgekit.report.formats import (
    COLUMNS,
    csv_text,
    header_lines,
    markdown_text,
    report_notes,
    summary_rows,
    write_csv,
    write_markdown,
)
from edgekit.report.table import bench_notes, bench_table

__all__ = [
    "COLUMNS",
    "bench_notes",
    "bench_table",
    "csv_text",
    "header_lines",
    "markdown_text",
    "report_notes",
    "summary_rows",
    "write_csv",
    "write_markdown",
]
