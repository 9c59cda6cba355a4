"""The verdicts as text: terminal lines, a Markdown section and an HTML section (escaped, no script)."""

from __future__ import annotations

from collections.abc import Sequence

from edgekit.verdict.rules import Candidate, ModelVerdict, Outcome


def _num(v: float | None, spec: str = ".3f") -> str:
    return "-" if v is None else format(v, spec)


def _drop(c: Candidate) -> str:
    if c.drop_ci_pts is None:
        return "reference" if c.drop_pts == 0.0 else "-"
    return f"{c.drop_pts:+.2f} [{c.drop_ci_pts[0]:+.2f}, {c.drop_ci_pts[1]:+.2f}]"


def _precision(c: Candidate) -> str:
    return c.precision if c.executed_precision in (None, c.precision) else f"{c.precision} (ran {c.executed_precision})"


def terminal_lines(verdicts: Sequence[ModelVerdict]) -> list[str]:
    """One line per model x target with the answer, then one indented line per configuration that lost."""
    out = []
    for v in verdicts:
        out.append(f"verdict: {v.summary()}" if v.ship is not None
                   else f"no verdict: {v.model} on {v.target}: {v.note}")
        for c in v.losers:
            out.append(f"  - {c.artifact} {c.runtime} {_precision(c)}: {c.outcome}: {c.reason}")
    return out


CANDIDATE_HEADERS = ("configuration", "precision", "outcome", "metric ms", "speed-up vs FP32",
                     "Δtop-1 pts [95% CI]", "mJ/inf", "why")


def _cells(c: Candidate) -> list[str]:
    return [f"{c.artifact} {c.runtime}", _precision(c), str(c.outcome), _num(c.latency_ms),
            "-" if c.speedup is None else f"{c.speedup:.2f}x", _drop(c), _num(c.energy_mj), c.reason]


def markdown_section(verdicts: Sequence[ModelVerdict], *, level: int = 2) -> str:
    """``## Verdict``: per model x target the configuration to ship, and a table of every configuration."""
    if not verdicts:
        return ""
    h = "#" * level
    out = [f"{h} Verdict: what to ship", ""]
    for v in verdicts:
        out.append(f"**{v.summary()}**" if v.ship is not None else f"**{v.summary()}**")
        out.append("")
        metric = v.metric
        out.append("| " + " | ".join(x.replace("metric", metric) for x in CANDIDATE_HEADERS) + " |")
        out.append("|---|---|---|---:|---:|---:|---:|---|")
        for c in sorted(v.candidates, key=lambda c: c.outcome is not Outcome.SHIP):
            out.append("| " + " | ".join(x.replace("|", "\\|").replace("\n", " ") or " " for x in _cells(c)) + " |")
        out.append("")
    out.append("Rules: the fastest configuration whose paired top-1 drop vs FP32 has its 95 % upper bound within the "
               "budget and whose speed-up over the fastest FP32 configuration is beyond the measured noise (both "
               "windows' spread, non-overlapping order-statistic CIs); unstable, throttled, unsupported and invalid "
               "rows do not compete. With none, the fastest stable FP32 configuration ships.")
    return "\n".join(out) + "\n"


def html_section(verdicts: Sequence[ModelVerdict]) -> str:
    """The verdict block of one target's section of the HTML report."""
    from edgekit.report.html_base import e, num, table, td

    if not verdicts:
        return '<p class="note">No rows to judge.</p>'
    parts = []
    for v in verdicts:
        cls = "verdict-ship" if v.ship is not None else "verdict-none warn"
        parts.append(f'<p class="{cls}" data-model="{e(v.model)}"><strong>{e(v.summary())}</strong></p>')
        rows = []
        for c in sorted(v.candidates, key=lambda c: c.outcome is not Outcome.SHIP):
            cells = _cells(c)
            row_cls = "ship" if c.outcome is Outcome.SHIP else "lost"
            rows.append(f'<tr class="{row_cls}" data-candidate="{e(c.key)}" data-outcome="{e(str(c.outcome))}">'
                        + td(cells[0]) + td(cells[1]) + td(cells[2]) + num(c.latency_ms)
                        + num(c.speedup, ".2f") + td(cells[5]) + num(c.energy_mj) + td(cells[7]) + "</tr>\n")
        heads = [h.replace("metric", v.metric) for h in CANDIDATE_HEADERS]
        parts.append(table(heads, rows, cls="sortable verdict"))
    return "\n".join(parts)
