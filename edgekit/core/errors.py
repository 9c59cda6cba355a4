"""The exceptions edgekit raises on purpose.

Every error carries a one-line message that says what was wrong, with which
value, and what to do about it. The CLI maps them to exit codes:

* :class:`UsageError` and subclasses -> exit 2 (bad usage or bad input);
* :class:`CheckFailed` and subclasses -> exit 1 (a check ran and failed:
  parity, a gate, an accuracy budget).

Anything else escaping the library is a bug and keeps its traceback.
"""

from __future__ import annotations


class EdgekitError(Exception):
    """Base class of all deliberate edgekit errors."""

    exit_code: int = 2

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.one_line())

    def one_line(self) -> str:
        """The message and its hint on one line, as the CLI prints it."""
        text = " ".join(self.message.split())
        if self.hint:
            text = f"{text} ({' '.join(self.hint.split())})"
        return text


class UsageError(EdgekitError):
    """Bad usage or bad input: wrong option, missing file, unknown name."""

    exit_code = 2


class UnknownModelError(UsageError):
    """A model name that is not in the zoo."""


class MissingDependencyError(UsageError):
    """An optional dependency is not installed; names the extra to install."""

    def __init__(self, module: str, extra: str, *, purpose: str = "", hint: str | None = None) -> None:
        self.module = module
        self.extra = extra
        what = f" ({purpose})" if purpose else ""
        super().__init__(
            f"{module} is not installed{what}",
            hint=hint or f"install it with: pip install 'edgekit[{extra}]'",
        )


class WeightsError(UsageError):
    """Weights that cannot be found, read, trusted or fitted to the model."""


class DataError(UsageError):
    """A dataset that cannot be read or does not fit the model."""


class ArtifactError(UsageError):
    """An artifact directory that is missing, incomplete or inconsistent."""


class OutputError(UsageError):
    """An output location that cannot be written safely."""


class ExportError(EdgekitError):
    """Export to ONNX failed in the exporter or the ONNX checker."""

    exit_code = 1


class DeviceError(EdgekitError):
    """The accelerator or its driver failed or does not fit (no NVIDIA driver, a driver older than the CUDA
    runtime, a CUDA call that failed): the message names the CUDA error and the fix. A benchmark records it
    in the cell's row and goes on with the other cells."""

    exit_code = 1


class CheckFailed(EdgekitError):
    """A check ran and failed (parity, gate, accuracy budget)."""

    exit_code = 1


class ParityError(CheckFailed):
    """An exported model does not compute what the source model computes."""
