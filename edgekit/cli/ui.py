"""Console output shared by the commands: progress on stderr, results on stdout.

Progress is shown only on an interactive terminal and never with --quiet or
--json, so piped output stays machine-readable.
"""

from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.console import Console

stdout = Console(soft_wrap=True)
stderr = Console(stderr=True, soft_wrap=True)

#: the width tables are laid out at when stdout is not a terminal (a log file, CI): rich's 80 columns would
#: fold every cell of a wide table
LOG_WIDTH = 200


def table_console() -> Console:
    """Where to print a wide table: stdout on a terminal (its own width), else a LOG_WIDTH console."""
    return stdout if stdout.is_terminal else Console(width=LOG_WIDTH, soft_wrap=True)


def state() -> dict[str, Any]:
    ctx = click.get_current_context(silent=True)
    root = ctx.find_root() if ctx else None
    return root.obj if root is not None and isinstance(root.obj, dict) else {}


def quiet() -> bool:
    return bool(state().get("quiet"))


@contextlib.contextmanager
def steps(title: str, *, enabled: bool = True) -> Iterator[Any]:
    """Yield a callback ``say(msg)`` that shows the current step as a spinner."""
    show = enabled and not quiet() and stderr.is_terminal
    if not show:
        yield lambda msg: None
        return
    with stderr.status(title) as status:

        def say(msg: str) -> None:
            status.update(f"{title}: {msg}")
            stderr.log(msg)

        yield say


def print_json(obj: Any) -> None:
    click.echo(json.dumps(obj, indent=2))


def error(msg: str) -> None:
    click.echo(f"edgekit: error: {msg}", err=True)


def is_tty() -> bool:
    return sys.stdout.isatty()


_F = TypeVar("_F", bound=Callable[..., Any])


def artifact_output(json_help: str) -> Callable[[_F], _F]:
    """``--overwrite``, ``--json`` and ``-o/--output DIR`` of a command that writes an artifact directory."""

    def decorate(f: _F) -> _F:
        f = click.option("-o", "--output", type=click.Path(path_type=Path), required=True,
                         help="Artifact directory to write.")(f)
        f = click.option("--json", "as_json", is_flag=True, help=json_help)(f)
        return click.option("--overwrite", is_flag=True,  # type: ignore[no-any-return]
                            help="Replace a non-empty output directory (only after success).")(f)

    return decorate
