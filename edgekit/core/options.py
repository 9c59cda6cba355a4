"""One option schema per tool: ranges, choices and help live on the options dataclass fields.

Each tool's ``XOptions`` (export, finetune, quantize, prune) declares its user-facing fields with
:func:`opt`, which stores a :class:`Rule` (what the value must be, as a check and as words) and the
help text in the field's metadata. ``XOptions.check()`` calls :func:`check_fields` (then its
cross-field checks; ``validate()`` adds the filesystem checks); ``edgekit run`` builds its
pipeline-file rules from the same fields (:func:`toml_rules`), so a range is written once and the
pipeline file, ``--dry-run`` and the tool cannot disagree. Stdlib only.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from dataclasses import MISSING, dataclass
from pathlib import Path
from typing import Any

from edgekit.core.errors import UsageError

_META = "edgekit.option"


@dataclass(frozen=True)
class Rule:
    """``ok(value)`` says whether a (non-None) value is allowed; ``wants`` says it in words."""

    ok: Callable[[Any], bool]
    wants: str
    hint: str | None = None


def at_least(n: float, wants: str | None = None) -> Rule:
    return Rule(lambda v: v >= n, wants or f"at least {n}")


def positive(wants: str = "positive") -> Rule:
    return Rule(lambda v: v > 0, wants)


def between(lo: float, hi: float, wants: str | None = None) -> Rule:
    """``lo <= v <= hi``."""
    return Rule(lambda v: lo <= v <= hi, wants or f"between {lo} and {hi}")


def one_of(choices: Iterable[str]) -> Rule:
    names = tuple(str(c) for c in choices)
    return Rule(lambda v: v in names, "one of " + ", ".join(repr(c) for c in names))


#: an int >= 1 that is not a bool
COUNT = Rule(lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 1, "a positive integer")
#: a string with something in it
NON_EMPTY = Rule(lambda v: bool(v.strip()), "a non-empty string")


def opt(default: Any = MISSING, *, help: str = "", rule: Rule | None = None, flag: str | None = None,
        default_factory: Any = MISSING) -> Any:
    """A dataclass field carrying its rule and help (``flag``: the CLI spelling, default ``--name-with-dashes``)."""
    meta = {_META: {"help": help, "rule": rule, "flag": flag}}
    if default_factory is not MISSING:
        return dataclasses.field(default_factory=default_factory, metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def option_meta(f: dataclasses.Field) -> dict[str, Any] | None:  # type: ignore[type-arg]
    return f.metadata.get(_META)


def flag_of(f: dataclasses.Field) -> str:  # type: ignore[type-arg]
    meta = option_meta(f) or {}
    return meta.get("flag") or "--" + f.name.replace("_", "-")


def _passes(rule: Rule, value: Any) -> bool:
    try:
        return bool(rule.ok(value))
    except TypeError:  # a value of the wrong type (e.g. a string where a number goes) breaks the rule
        return False


def problem(f: dataclasses.Field, value: Any) -> Rule | None:  # type: ignore[type-arg]
    """The rule ``value`` breaks for field ``f`` (None: allowed, or the field has no rule)."""
    meta = option_meta(f)
    rule = meta and meta["rule"]
    if rule is None or value is None:
        return None
    return None if _passes(rule, value) else rule


def check_fields(options: Any) -> None:
    """Raise :class:`UsageError` for the first field whose value breaks its rule (``--flag must be ..., got v``)."""
    for f in dataclasses.fields(options):
        value = getattr(options, f.name)
        rule = problem(f, value)
        if rule is not None:
            raise UsageError(f"{flag_of(f)} must be {rule.wants}, got {value!r}", hint=rule.hint)


def _union_args(tp: Any) -> tuple[Any, ...]:
    return typing.get_args(tp) if typing.get_origin(tp) in (typing.Union, types.UnionType) else (tp,)


def _toml_types(tp: Any) -> tuple[type, ...]:
    """The TOML value types that can stand for a field annotated ``tp``."""
    out: list[type] = []
    for a in _union_args(tp):
        if a is bool:
            out.append(bool)
        elif a is int:
            out.append(int)
        elif a is float:
            out += [int, float]
        elif a is str or a is Path or (isinstance(a, type) and issubclass(a, str)):
            out.append(str)
    return tuple(dict.fromkeys(out))


def _enum_rule(tp: Any) -> Rule | None:
    for a in _union_args(tp):
        if isinstance(a, type) and issubclass(a, enum.Enum):
            return one_of(m.value for m in a)
    return None


TomlRule = tuple[tuple[type, ...], Callable[[Any], bool] | None, str]


def toml_rules(cls: type, keys: Mapping[str, str]) -> dict[str, TomlRule]:
    """Pipeline-file rules ``key -> (types, check, wants)`` for ``keys`` (file key -> field of ``cls``).

    Types come from the field annotations, ranges and choices from the field rules (or a StrEnum type).
    """
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    rules: dict[str, TomlRule] = {}
    for key, name in keys.items():
        tp = hints[name]
        meta = option_meta(fields[name])
        rule = (meta and meta["rule"]) or _enum_rule(tp)
        check = None if rule is None else (lambda v, _r=rule: _passes(_r, v))
        rules[key] = (_toml_types(tp), check, rule.wants if rule else "")
    return rules
