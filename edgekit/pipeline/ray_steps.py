"""With ``--executor ray``, the host-side steps run as Ray tasks, so a cluster spreads them over its nodes.

Before the run's step loop, :func:`prebuild_on_ray` runs every step that is not cached in two waves:
the model steps (fine-tune or export) in parallel, then every recipe step (quantize, prune) whose parent
is there, in parallel; each task asks for ``threads`` CPUs (1 by default). A task writes its artifact
straight into its cache entry, as the local loop does (staged, renamed into place when complete), so on a
multi-node cluster the step cache must be on a filesystem every node sees (``--cache-dir``). The step loop
then finds these entries as cache hits; it reports them ``ran`` (with "on Ray"), and a step whose own
check failed in its task is reported ``failed`` with that message, never run again within the run.

:func:`start_ray` starts a private local instance (declaring one resource per target for the device
actors) unless Ray is already up or ``address`` names a cluster to join.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Sequence
from typing import Any

from edgekit.core.errors import CheckFailed, EdgekitError
from edgekit.core.lazy import require

log = logging.getLogger(__name__)


def start_ray(targets: Sequence[str], *, address: str | None, num_cpus: int | None) -> bool:
    """Ray up for this run; True when this call started a private instance (the caller shuts it down).
    A private instance declares one resource per lane: each device, and ``host`` for the local targets."""
    require("ray", purpose="--executor ray")
    import ray

    from edgekit.pipeline.executors import lane_of
    from edgekit.pipeline.ray_executor import resource_name

    if ray.is_initialized():
        return False
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")  # no token file written into the user's home
    if address is not None:
        ray.init(address=address, log_to_driver=False, configure_logging=False)
        return False
    ray.init(num_cpus=num_cpus or os.cpu_count() or 1, include_dashboard=False, log_to_driver=False,
             configure_logging=False, resources={resource_name(lane_of(t)): 1 for t in targets})
    return True


def _run_step_task(step: Any, pipeline: Any, overwrite: bool, threads: int | None) -> str | None:
    """In a Ray worker: make one step's artifact; the message of its own failed check, else None."""
    from edgekit.pipeline.run import RunProgress, run_step

    try:
        run_step(step, pipeline, overwrite=overwrite, threads=threads, progress=RunProgress(lambda _m: None))
    except CheckFailed as e:
        return e.one_line()
    return None


def prebuild_on_ray(plan: Any, pipeline: Any, cache: Any, *, threads: int | None,
                    say: Callable[[str], None]) -> tuple[set[str], dict[str, str]]:
    """Run the steps that are not cached as Ray tasks; (keys built, key -> why its own check failed)."""
    import ray

    from edgekit.core.manifest import load_artifact
    from edgekit.pipeline.run import _cached

    task = ray.remote(max_retries=0)(_run_step_task).options(num_cpus=threads or 1)
    built: set[str] = set()
    failed: dict[str, str] = {}
    waves = ([s for s in plan.steps if s.parent is None], [s for s in plan.steps if s.parent is not None])
    for wave in waves:
        refs: dict[Any, Any] = {}
        for step in wave:
            if step.parent is not None and (step.parent.key in failed or not step.parent.path.exists()):
                continue  # the step loop reports it skipped (or runs its parent first)
            done = {step.parent.key: load_artifact(step.parent.path)} if step.parent is not None else {}
            art, _ = _cached(cache, step, done)
            if art is not None:
                continue
            cache.clear_damaged(step.entry)
            refs[task.remote(step, pipeline, step.path.exists(), threads)] = step
        if refs:
            say(f"running {len(refs)} step(s) as Ray tasks: {', '.join(s.label for s in refs.values())}")
        for ref, step in refs.items():
            try:
                note = ray.get(ref)
            except ray.exceptions.RayTaskError as e:  # the step's own exception, raised here as it would be
                cause = getattr(e, "cause", None)
                if isinstance(cause, EdgekitError):
                    raise cause from None
                raise
            if note is None:
                built.add(step.key)
            else:
                failed[step.key] = note
    return built, failed
