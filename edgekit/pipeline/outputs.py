"""What a run writes besides the bench results: the verdict in the report, report.md/html, run.json."""

from __future__ import annotations

import datetime as _dt
from dataclasses import replace
from pathlib import Path
from typing import Any

from edgekit.core.atomic import atomic_write_json
from edgekit.pipeline.config import Pipeline


def budget_pts(pipeline: Pipeline) -> float | None:
    """The pipeline's absolute accuracy budget (None: each row's own, which the bench judged it by)."""
    return pipeline.gate.max_top1_drop


def with_verdict(report: Any, pipeline: Pipeline, *, metric: str) -> tuple[Any, list[Any]]:
    """``report`` with its verdicts under ``extra.verdict``, and the verdicts."""
    from edgekit.verdict import judge_report, verdict_json

    verdicts = judge_report(report, metric=metric, budget_pts=budget_pts(pipeline))
    extra = {**report.extra, "verdict": verdict_json(verdicts, metric=metric, budget_pts=budget_pts(pipeline))}
    return replace(report, extra=extra), verdicts


def _write_reports(report: Any, output: Path) -> dict[str, str]:
    from edgekit.report.formats import write_markdown
    from edgekit.report.html import write_html

    return {
        "markdown": str(write_markdown(report, output / "report.md")),
        "html": str(write_html([report], output / "report.html")),
    }


def _write_run_json(result: Any, output: Path) -> Path:
    p = result.plan
    doc = {
        "schema": "edgekit.run", "schema_version": 1,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "pipeline": p.pipeline.to_json(), "target": p.target, "targets": list(result.targets or (p.target,)),
        "invalid_jobs": list(result.invalid_jobs),
        "steps": [o.to_json() for o in result.outcomes],
        "artifacts": [{"model": m, "recipe": r, "path": str(pub), "cache_path": str(s.path), "step": s.label}
                      for (m, r, s), pub in zip(p.artifacts, result.artifacts)],
        "gate": {"passed": result.passed, "rules": dict(p.pipeline.gate.__dict__),
                 "checks": [c.to_json() for c in result.checks]},
        "verdict": [v.to_json() for v in result.verdicts],
        "reports": dict(result.report_paths), "history_run_id": result.history_run_id,
        "seconds": round(result.seconds, 2),
        "timings": {k: round(v, 2) for k, v in result.timings.items()},
    }
    return atomic_write_json(output / "run.json", doc)
