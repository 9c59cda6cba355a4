"""The Runner protocol shared by every backend.

A runner is a context manager around one loaded model::

    with OnnxRuntimeRunner(path, threads=2) as r:
        out = r.infer({"input": x})

Public methods validate their arguments and call ``_impl`` methods, which do
the work; backends implement only the ``_impl`` methods.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

import numpy as np

from edgekit.core.errors import UsageError
from edgekit.core.specs import TensorSpec


@dataclass(frozen=True)
class RunnerInfo:
    """What a loaded runner actually runs: recorded with every result."""

    runtime: str
    runtime_version: str
    device: str
    precision: str  # the precision the runtime reports it executes, not the one asked for
    threads: int | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "runtime": self.runtime,
            "runtime_version": self.runtime_version,
            "device": self.device,
            "precision": self.precision,
            "threads": self.threads,
            "details": dict(self.details),
        }


#: what :meth:`Runner.validate_feeds` compares one input against: spec, numpy dtype, static (axis, size)
_FeedCheck = tuple[TensorSpec, "np.dtype[Any] | None", tuple[tuple[int, int], ...]]


class Runner(abc.ABC):
    """Base class of all backends."""

    name: str = "runner"
    #: what :meth:`last_runtime_ns` measures, for the results; None where the runtime times nothing itself
    runtime_timer: str | None = None

    def __init__(self, model_path: str | Path) -> None:
        self.model_path = Path(model_path)
        if not self.model_path.is_file():
            raise UsageError(f"model file {self.model_path} does not exist")
        self._loaded = False
        self._checks: dict[str, _FeedCheck] | None = None

    # -- lifecycle -------------------------------------------------------
    def __enter__(self) -> Runner:
        self.activate()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.deactivate()

    def activate(self) -> None:
        if not self._loaded:
            self._activate_impl()
            self._loaded = True
            self._checks = self._feed_checks()

    def deactivate(self) -> None:
        if self._loaded:
            self._deactivate_impl()
            self._loaded = False
            self._checks = None

    # -- metadata --------------------------------------------------------
    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        self._require_loaded()
        return self._inputs_impl()

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        self._require_loaded()
        return self._outputs_impl()

    @property
    def info(self) -> RunnerInfo:
        self._require_loaded()
        return self._info_impl()

    # -- inference -------------------------------------------------------
    def infer(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run one inference; checks names, ranks, static dims and dtypes first."""
        self._require_loaded()
        self.validate_feeds(feeds)
        return self._infer_impl(feeds)

    def last_runtime_ns(self) -> int | None:
        """The runtime's own timing of the most recent :meth:`infer`, in ns (None before the first call,
        or where the runtime times nothing). It excludes the Python binding and edgekit's checks: OpenVINO's
        ``InferRequest.latency`` (what benchmark_app reports), TensorRT's GPU compute time (what trtexec
        reports as GPU Compute Time). The host wall time around ``infer`` stays the headline latency."""
        self._require_loaded()
        return self._last_runtime_ns_impl()

    def validate_feeds(self, feeds: dict[str, np.ndarray]) -> None:
        """Raise UsageError (naming the input and what the model wants) unless ``feeds`` fit the inputs.

        This runs on every timed call, so what it compares against is built once at activation (dtype
        objects, static dims): measured, looking the specs up and naming dtypes per call cost ~85 us after a
        6 ms inference had evicted that code from the caches, ~1.5 % of a MobileNetV3 latency."""
        self._require_loaded()
        checks: dict[str, _FeedCheck] = self._checks  # type: ignore[assignment]  # built by activate()
        if feeds.keys() != checks.keys():
            raise UsageError(
                f"input names do not match the model: missing {sorted(checks.keys() - feeds.keys())}, "
                f"unexpected {sorted(feeds.keys() - checks.keys())}",
                hint=f"the model takes {sorted(checks)}",
            )
        for name, arr in feeds.items():
            spec, dtype, static = checks[name]
            if not isinstance(arr, np.ndarray):
                raise UsageError(f"input {name!r} must be a numpy array, got {type(arr).__name__}")
            if (arr.dtype != dtype) if dtype is not None else (str(arr.dtype) != spec.dtype):
                raise UsageError(
                    f"input {name!r} has dtype {arr.dtype}, the model wants {spec.dtype}",
                    hint=f"convert with x.astype(np.{spec.dtype})",
                )
            shape = arr.shape
            bad = len(shape) != len(spec.shape)
            for i, d in static:
                bad = bad or shape[i] != d
            if bad:
                raise UsageError(f"input {name!r} has shape {tuple(arr.shape)}, the model wants {spec.shape}")

    def _feed_checks(self) -> dict[str, _FeedCheck]:
        """Per input: its spec, its numpy dtype (None when numpy cannot name it: compared by name) and its
        static dimensions as (axis, size)."""
        checks = {}
        for spec in self._inputs_impl():
            try:
                dtype: np.dtype[Any] | None = np.dtype(spec.dtype)
            except TypeError:
                dtype = None
            static = tuple((i, d) for i, d in enumerate(spec.shape) if isinstance(d, int) and d >= 0)
            checks[spec.name] = (spec, dtype, static)
        return checks

    def _require_loaded(self) -> None:
        if not self._loaded:
            raise UsageError(f"{type(self).__name__} is not active", hint="use it in a 'with' block or call activate()")

    # -- to implement ----------------------------------------------------
    @abc.abstractmethod
    def _activate_impl(self) -> None: ...

    def _deactivate_impl(self) -> None:
        return None

    @abc.abstractmethod
    def _inputs_impl(self) -> tuple[TensorSpec, ...]: ...

    @abc.abstractmethod
    def _outputs_impl(self) -> tuple[TensorSpec, ...]: ...

    @abc.abstractmethod
    def _info_impl(self) -> RunnerInfo: ...

    def _last_runtime_ns_impl(self) -> int | None:
        return None

    @abc.abstractmethod
    def _infer_impl(self, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]: ...
