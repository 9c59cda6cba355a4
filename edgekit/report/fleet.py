"""The cross-device report: one comparison table over the targets, then a section per target.

Rows are model x recipe (one published artifact each), columns the targets.
A cell shows, for that artifact on that target, its best configuration by the
verdict (:mod:`edgekit.verdict`): the shipped one (marked ★ ship) when it is
of this artifact, else the fastest one that qualified, else why the artifact
lost there (the outcome of its fastest configuration); with its latency
(the verdict metric), its paired top-1 drop vs FP32 and its energy per
inference where measured. The HTML page is :func:`edgekit.report.html.render_html`
of every target's report with the table above the sections: self-contained,
the same Content-Security-Policy, readable offline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edgekit.bench.results import BenchReport
from edgekit.core.atomic import atomic_write_text
from edgekit.verdict.rules import Candidate, ModelVerdict, Outcome, report_verdicts

_RANK = {Outcome.SHIP: 0, Outcome.BEATEN: 1}


@dataclass(frozen=True)
class Cell:
    target: str
    candidate: Candidate | None
    shipped: bool
    text: str
    title: str


def _best(cands: list[Candidate]) -> Candidate | None:
    """The shipped candidate, else the fastest that qualified, else the fastest measured one."""
    if not cands:
        return None
    return min(cands, key=lambda c: (_RANK.get(c.outcome, 2), c.latency_ms if c.latency_ms is not None
                                     else float("inf")))


def _cell(target: str, verdicts: list[ModelVerdict], model: str, artifact: str) -> Cell:
    cands = [c for v in verdicts if v.model == model for c in v.candidates if c.artifact == artifact]
    metric = next((v.metric for v in verdicts), "p50")
    c = _best(cands)
    if c is None:
        return Cell(target, None, False, "-", "not benched on this target")
    parts = []
    if c.latency_ms is not None:
        parts.append(f"{metric} {c.latency_ms:.3f} ms")
    if c.drop_pts is not None:
        parts.append(f"Δ {c.drop_pts:+.2f} pts")
    if c.energy_mj is not None:
        parts.append(f"{c.energy_mj:.3f} mJ")
    shipped = c.outcome is Outcome.SHIP
    config = f"{c.runtime} {c.precision}"
    if shipped:
        text = f"★ ship: {config}; " + ", ".join(parts)
    elif c.outcome is Outcome.BEATEN:
        text = f"{config}; " + ", ".join(parts)
    else:
        text = f"{c.outcome}" + (f" ({config}; " + ", ".join(parts) + ")" if parts else "")
    return Cell(target, c, shipped, text, c.reason)


def comparison(reports: dict[str, BenchReport], rows: Sequence[tuple[str, str, str]] | None = None
               ) -> tuple[list[str], list[tuple[str, str, list[Cell]]]]:
    """(targets, [(model, recipe, one cell per target)]); ``rows``: (model, recipe, artifact name)."""
    targets = list(reports)
    verdicts = {t: report_verdicts(r) for t, r in reports.items()}
    if rows is None:
        seen: dict[str, tuple[str, str, str]] = {}
        for rep in reports.values():
            for a in rep.artifacts:
                recipe = a.name[len(a.model) + 1:] if a.name.startswith(a.model + "-") else a.name
                seen.setdefault(a.name, (a.model, recipe, a.name))
        rows = list(seen.values())
    models_of = {name: m for m, _, name in rows}
    table = []
    for model, recipe, name in rows:
        model_of_rows = next((r.model for rep in reports.values() for r in rep.results if r.artifact == name),
                             models_of[name])
        table.append((model, recipe, [_cell(t, verdicts[t], model_of_rows, name) for t in targets]))
    return targets, table


def comparison_markdown(reports: dict[str, BenchReport], rows: Sequence[tuple[str, str, str]] | None = None) -> str:
    targets, table = comparison(reports, rows)
    out = ["## Across targets: what to ship where", "",
           "| model | recipe | " + " | ".join(targets) + " |", "|---|---|" + "---|" * len(targets)]
    for model, recipe, cells in table:
        out.append(f"| {model} | {recipe} | " + " | ".join(c.text.replace("|", "\\|") for c in cells) + " |")
    out += ["", "Per target and model, ★ marks the configuration to ship (the verdict); the other cells show the "
                "artifact's best qualifying configuration there, or why it lost. Δ: paired top-1 drop vs FP32.", ""]
    for t, rep in reports.items():
        out += [f"- {t}: " + "; ".join(v.summary() for v in report_verdicts(rep))]
    return "\n".join(out) + "\n"


def comparison_html(reports: dict[str, BenchReport], rows: Sequence[tuple[str, str, str]] | None = None) -> str:
    from edgekit.report.html_base import e, table, td

    targets, tab = comparison(reports, rows)
    body = []
    for model, recipe, cells in tab:
        tds = "".join(td(c.text, cls="ship" if c.shipped else "", title=c.title) for c in cells)
        body.append(f'<tr data-model="{e(model)}" data-recipe="{e(recipe)}">{td(model)}{td(recipe)}{tds}</tr>\n')
    summaries = "".join(f"<li>{e(v.summary())}</li>" for rep in reports.values() for v in report_verdicts(rep))
    return ('<section class="fleet" id="across-targets"><h2>Across targets: what to ship where</h2>'
            + table(["model", "recipe", *targets], body, cls="sortable comparison")
            + '<p class="note">★ ship: the verdict for that model on that target; other cells: the artifact\'s best '
              "qualifying configuration there, or why it lost (hover for the reason). Δ: paired top-1 drop vs "
              "FP32 on the same images; mJ: energy per inference where measured.</p>"
            + f'<ul class="verdicts">{summaries}</ul></section>')


def write_fleet_reports(reports: dict[str, BenchReport], output: Path,
                        rows: Sequence[tuple[str, str, str]] | None = None) -> dict[str, str]:
    """``report.md`` and ``report.html`` over every target (atomically); returns their paths."""
    from edgekit.report.formats import markdown_text
    from edgekit.report.html import render_html

    md = comparison_markdown(reports, rows) + "\n" + "\n".join(markdown_text(r) for r in reports.values())
    html = render_html(list(reports.values()), names=[f"targets/{t}" for t in reports],
                       title="edgekit run: " + ", ".join(reports), preamble=comparison_html(reports, rows))
    return {"markdown": str(atomic_write_text(output / "report.md", md)),
            "html": str(atomic_write_text(output / "report.html", html))}


__all__ = ["comparison", "comparison_html", "comparison_markdown", "write_fleet_reports"]
