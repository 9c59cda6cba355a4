"""Reading the JSON files edgekit writes (results, baselines), with one-line errors for every way they break."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from edgekit.core.errors import EdgekitError


def unclosed(text: str) -> bool:
    """True when the text ends inside a string or with brackets left open: a cut-off JSON document."""
    depth, in_string, escaped = 0, False, False
    for ch in text:
        if in_string:
            if escaped:
                escaped = False
            elif ch == "\\":
                escaped = True
            elif ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
        elif ch in "{[":
            depth += 1
        elif ch in "}]":
            depth -= 1
    return in_string or depth > 0


def read_json_file(path: str | os.PathLike[str], *, what: str, error: type[EdgekitError], missing_hint: str,
                   broken_hint: str) -> Any:
    """The parsed content of ``path``; ``error`` (one line, with a hint) when it is missing, unreadable,
    empty or not JSON (saying "truncated?" when the document is cut off). ``what`` names the file kind."""
    p = Path(path)
    if not p.is_file():
        raise error(f"{what} {p} does not exist", hint=missing_hint)
    try:
        text = p.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise error(f"cannot read {what} {p}: {e}") from None
    if not text.strip():
        raise error(f"{what} {p} is empty", hint=broken_hint)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        truncated = " (truncated?)" if unclosed(text) else ""
        raise error(f"{what} {p} is not valid JSON{truncated}: {e.msg} at line {e.lineno} column {e.colno}",
                    hint=broken_hint) from None
