"""``edgekit run --dry-run``: the plan as rows, what would run and what is cached; nothing is written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from edgekit.core.manifest import Artifact
from edgekit.pipeline.cache import StepCache
from edgekit.pipeline.config import Pipeline
from edgekit.pipeline.plan import make_plan
from edgekit.pipeline.run import _cached, preflight


def plan_only(pipeline: Pipeline, *, target: str | None = None, force: bool = False,
              cache_root: Path | None = None, threads: int | None = None, fleet: Any = None) -> list[dict[str, Any]]:
    """The plan as rows: what would run and what is cached (``--dry-run``); nothing is written."""
    from edgekit.pipeline import targets as fleet_mod

    cache = StepCache(cache_root, force=force)
    targets = fleet_mod.resolve_targets(pipeline, target, fleet)
    plan = make_plan(pipeline, cache, target=targets[0], threads=threads)
    if fleet_mod.is_fleet(targets):
        fleet_mod.preflight_targets(plan, targets, fleet_mod.factory_for(pipeline, fleet, threads=threads))
    else:
        preflight(plan)
    rows = []
    done: dict[str, Artifact] = {}
    for s in plan.steps:
        parent_ok = s.parent is None or s.parent.key in done
        art, note = _cached(cache, s, done) if parent_ok else (None, None)
        if art is not None:
            done[s.key] = art
        if art is None and not parent_ok and s.path.exists():
            note = "its parent runs again"
        rows.append({"step": s.kind, "label": s.label, "key": s.key[:16], "cached": art is not None,
                     "action": "skip (cached)" if art is not None else f"run{f' ({note})' if note else ''}",
                     "path": str(s.path)})
    for t in targets:
        for model, recipe, s in plan.artifacts:
            rows.append({"step": "bench", "label": f"{model}/{recipe}", "key": "-", "cached": False,
                         "action": f"bench on {t}", "path": str(s.path)})
    return rows
