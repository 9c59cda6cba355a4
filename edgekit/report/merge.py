"""Several results files in one report: grouped by target, in the order given.

Each file keeps its own rows, references and environment (a row's FP32
reference is always looked up in its own file); files of the same target share
one section of the HTML report, one results table and one Pareto plot. CSV and
Markdown of one file are exactly what ``edgekit bench --csv/--md`` writes; of
several, the Markdown sections follow one another and the CSV gains two leading
columns, ``source`` and ``target``, over the union of the files' columns.
"""

from __future__ import annotations

import csv
import io
import string
from collections.abc import Sequence
from dataclasses import dataclass

from edgekit.bench.results import ArtifactInfo, BenchReport, BenchResult
from edgekit.core.errors import UsageError
from edgekit.report.formats import csv_text, markdown_text


@dataclass(frozen=True, eq=False)
class Source:
    """One results file: its report, the name shown for it, and a short tag (A, B, ...) for merged tables."""

    report: BenchReport
    name: str
    tag: str

    def artifact(self, name: str) -> ArtifactInfo | None:
        try:
            return self.report.artifact(name)
        except KeyError:
            return None


@dataclass(frozen=True, eq=False)
class TargetGroup:
    """The files that measured one target."""

    target: str
    description: str
    sources: tuple[Source, ...]

    def rows(self) -> list[tuple[Source, BenchResult]]:
        return [(s, r) for s in self.sources for r in s.report.results]

    @property
    def merged(self) -> bool:
        return len(self.sources) > 1


def _tag(i: int) -> str:
    letters = string.ascii_uppercase
    return letters[i] if i < 26 else letters[i // 26 - 1] + letters[i % 26]


def group_by_target(reports: Sequence[BenchReport], names: Sequence[str] | None = None) -> list[TargetGroup]:
    """Group ``reports`` (named ``names``, e.g. their file paths) by target name, first appearance first."""
    if not reports:
        raise UsageError("no results to report", hint="give one or more files written by 'edgekit bench -o'")
    if names is None:
        names = [f"results {i + 1}" for i in range(len(reports))]
    if len(names) != len(reports):
        raise UsageError(f"{len(names)} names for {len(reports)} reports")
    by_target: dict[str, list[Source]] = {}
    for i, (rep, name) in enumerate(zip(reports, names)):
        by_target.setdefault(rep.target_name, []).append(Source(report=rep, name=str(name), tag=_tag(i)))
    return [TargetGroup(target=t, description=str(srcs[0].report.target.get("description", "")), sources=tuple(srcs))
            for t, srcs in by_target.items()]


def merged_markdown(groups: Sequence[TargetGroup]) -> str:
    """The Markdown of every file, grouped by target; with several files each section names its file."""
    sources = [s for g in groups for s in g.sources]
    if len(sources) == 1:
        return markdown_text(sources[0].report)
    parts = []
    for s in sources:
        head, _, rest = markdown_text(s.report).partition("\n")
        parts.append(f"{head}\n\n_source: `{s.name}`_\n{rest}")
    return "\n".join(parts)


def merged_csv(groups: Sequence[TargetGroup]) -> str:
    """The CSV of one file as is; of several, ``source`` and ``target`` columns then the union of the columns."""
    sources = [s for g in groups for s in g.sources]
    if len(sources) == 1:
        return csv_text(sources[0].report)
    header: list[str] = []
    rows: list[dict[str, str]] = []
    for s in sources:
        reader = csv.DictReader(io.StringIO(csv_text(s.report)))
        for k in reader.fieldnames or ():
            if k not in header:
                header.append(k)
        for row in reader:
            rows.append({"source": s.name, "target": s.report.target_name, **row})
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=["source", "target", *header], lineterminator="\n", restval="")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()
