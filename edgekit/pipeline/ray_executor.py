"""``--executor ray``: the same sweep as one Ray actor per device, on the host side only.

* Each device gets one actor (:class:`_DeviceActor`) that holds its session
  (made on the driver, so the device is resolved from the user's registry
  there; its SSH connection opened in the actor) for the whole sweep and runs its jobs one at a time
  (an actor runs one method at a time). The actor asks for ``num_cpus=0`` and
  the custom resource ``edgekit-device:<lane>`` = 1 (a device, or ``host`` for the local targets): a cluster that
  declares each device's resource once can never place two actors of one
  device, even across concurrent sweeps (exclusivity).
* Timeouts are the transport's (per job, per device); the driver adds a guard
  of ``timeout + grace``: an actor that does not answer in time is killed, its
  job recorded ``invalid`` ("cancelled"), its remaining jobs ``invalid``;
  nothing is retried.
* ``address=None`` starts a private local instance (with ``num_cpus`` and one
  resource per device), or uses the one this process already started;
  ``address="auto"`` (or ``ray://...``) joins an existing cluster, whose head
  must declare the device resources (``ray start --head --resources
  '{"edgekit-device:device:nano-01": 1}'``).
* Ray is never installed on the devices: the actors drive them over the
  transport, exactly as the default executor's threads do.

``pip install 'edgekit[ray]'``; imported only when asked for.
"""

from __future__ import annotations

import logging
import os
import time
from typing import Any

from edgekit.core.errors import UsageError
from edgekit.core.lazy import require
from edgekit.pipeline.executors import BenchJob, JobRecord, OnRecord, MakeSession, invalid, run_job

log = logging.getLogger(__name__)

RESOURCE_PREFIX = "edgekit-device:"
#: seconds the driver waits past a job's own timeout before it cancels the actor
GUARD_GRACE_S = 60.0
#: seconds an actor may take to start and open its session (the transport's connect timeout is inside it)
OPEN_GUARD_S = 180.0


def resource_name(target: str) -> str:
    return f"{RESOURCE_PREFIX}{target}"


class _DeviceActor:
    """Holds one device's session; ``bench`` runs one job (Ray serializes an actor's calls)."""

    def __init__(self, target: str, session: Any) -> None:
        self.target = target
        self.session = session  # made on the driver (the device resolved there), opened here
        self.lost: str | None = None

    def open(self) -> str | None:
        """None when the session opened, else why not (the device's jobs are then invalid)."""
        from edgekit.core.errors import EdgekitError

        try:
            self.session.open()
        except (EdgekitError, OSError) as e:
            self.lost = e.one_line() if isinstance(e, EdgekitError) else f"{type(e).__name__}: {e}"
        return self.lost

    def bench(self, job: BenchJob, timeout_s: float) -> JobRecord:
        worker = f"ray-actor-{os.getpid()}-{self.target}"
        if self.lost is not None:
            return invalid(job, f"not run: {self.target} was lost ({self.lost})", worker=worker, lost=True)
        rec = run_job(self.session, job, timeout_s=timeout_s, worker=worker)
        if rec.device_lost:
            self.lost = rec.reason
        return rec

    def close(self) -> None:
        if self.session is not None:
            self.session.close()


class RayExecutor:
    """One actor per device on Ray (see the module doc)."""

    name = "ray"

    def __init__(self, *, address: str | None = None, num_cpus: int | None = None,
                 grace_s: float = GUARD_GRACE_S) -> None:
        self.address = address
        self.num_cpus = num_cpus
        self.grace_s = grace_s
        self.started = False  # this executor started the Ray instance (and shuts it down)

    def _ray(self, targets: list[str]) -> Any:
        require("ray", purpose="--executor ray")
        import ray

        if not ray.is_initialized():
            from edgekit.pipeline.ray_steps import start_ray

            self.started = start_ray(targets, address=self.address, num_cpus=self.num_cpus)
        have = ray.cluster_resources()
        missing = [t for t in targets if have.get(resource_name(t), 0) < 1]
        if missing:
            raise UsageError(f"the Ray cluster declares no resource for {', '.join(missing)}",
                             hint="start its head with --resources '{" + ", ".join(
                                 f'"{resource_name(t)}": 1' for t in missing) + "}' (one per device, once)")
        return ray

    def run(self, work: dict[str, list[BenchJob]], factory: MakeSession, *, timeout_s: float,
            on_record: OnRecord) -> list[JobRecord]:
        targets = [t for t, jobs in work.items() if jobs]
        if not targets:
            return []
        ray = self._ray(targets)
        try:
            return self._sweep(ray, work, targets, factory, timeout_s, on_record)
        finally:
            if self.started:
                ray.shutdown()
                self.started = False

    def _sweep(self, ray: Any, work: dict[str, list[BenchJob]], targets: list[str], factory: MakeSession,
               timeout_s: float, on_record: OnRecord) -> list[JobRecord]:
        from edgekit.core.errors import EdgekitError

        actor_cls = ray.remote(num_cpus=0, max_restarts=0, max_task_retries=0)(_DeviceActor)
        records: dict[str, list[JobRecord]] = {t: [] for t in targets}
        queue = {t: list(work[t]) for t in targets}
        sessions: dict[str, Any] = {}
        for t in list(targets):
            try:  # resolved here, on the driver: the registry, files and environment the user ran with
                sessions[t] = factory(t)
            except (EdgekitError, OSError) as e:
                why = e.one_line() if isinstance(e, EdgekitError) else f"{type(e).__name__}: {e}"
                for job in queue[t]:
                    records[t].append(invalid(job, f"device unavailable: {why}", worker=f"ray-driver-{t}", lost=True))
                    on_record(records[t][-1])
                queue[t] = []
                targets.remove(t)
        actors = {t: actor_cls.options(resources={resource_name(t): 1}).remote(t, sessions[t]) for t in targets}
        pending: dict[Any, tuple[str, BenchJob | None, float]] = {}  # ref -> (target, job or None: open, deadline)
        guard = timeout_s + self.grace_s

        def keep(t: str, rec: JobRecord) -> None:
            records[t].append(rec)
            on_record(rec)

        def give_up(t: str, why: str) -> None:
            for job in queue[t]:
                keep(t, invalid(job, why, worker=f"ray-driver-{t}", lost=True))
            queue[t] = []

        def submit(t: str) -> None:
            if queue[t]:
                job = queue[t].pop(0)
                pending[actors[t].bench.remote(job, timeout_s)] = (t, job, time.monotonic() + guard)

        killed: set[str] = set()
        for t in targets:
            pending[actors[t].open.remote()] = (t, None, time.monotonic() + max(guard, OPEN_GUARD_S))
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1, timeout=1.0)
            for ref in ready:
                t, job, _ = pending.pop(ref)
                try:
                    value = ray.get(ref)
                except ray.exceptions.RayError as e:  # the actor died: its device's jobs cannot run
                    why = f"the Ray actor of {t} died ({type(e).__name__})"
                    if job is not None:
                        keep(t, invalid(job, why, worker=f"ray-driver-{t}", lost=True))
                    give_up(t, f"not run: {why}")
                    continue
                if job is None:  # open() answered
                    if value is not None:
                        give_up(t, f"device unavailable: {value}")
                    else:
                        submit(t)
                    continue
                keep(t, value)
                if value.device_lost:
                    give_up(t, f"not run: {t} was lost during {job.name} ({value.reason})")
                else:
                    submit(t)
            now = time.monotonic()
            for ref, (t, job, deadline) in list(pending.items()):
                if now > deadline:  # the transport's own timeout did not fire: cancel, never retry
                    pending.pop(ref)
                    ray.kill(actors[t], no_restart=True)
                    killed.add(t)
                    what = job.name if job is not None else "opening the session"
                    if job is not None:
                        keep(t, invalid(job, f"cancelled: no answer within {guard:.0f} s (not retried)",
                                        worker=f"ray-driver-{t}", lost=True))
                    give_up(t, f"not run: {t}'s actor was cancelled during {what}")
        for t in targets:
            if t in killed:
                continue
            try:
                ray.get(actors[t].close.remote(), timeout=30)
            except Exception as e:  # noqa: BLE001 - a dead actor or connection: the records already say why
                log.warning("closing %s failed: %s", t, e)
            ray.kill(actors[t], no_restart=True)
        return [rec for t in work if t in records for rec in records[t]]
