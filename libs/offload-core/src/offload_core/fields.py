"""One field reader: a dataclass declares its fields once, and every value is parsed the same way.

A field names where its value comes from (an environment variable, or a key of a YAML
mapping), its default, its bounds and choices, and whether it is a secret:

    @dataclass(frozen=True)
    class Example:
        workers: int = declare("OFFLOAD_WEB_WORKERS", 2, minimum=1)

The type comes from the annotation (str, int, float, bool, tuple[X, ...], or `X | None`);
`parse` takes over for anything else. Values may be strings (the environment, KEDA's string
metadata such as "10") or YAML scalars; both go through the same parser per type, and a bad
one is a ValueError saying what the value must be. `problem()` turns it into the one error
line every reader shows: the field's path, what it must be, and the value unless it is a
secret. The services' settings (`settings.py`) and the autoscaler's ScaledObject spec read
through this module, as KEDA's scalers read both their metadata and their secrets through
one typed-config reader (pkg/scalers/scalersconfig/typed_config.go).
"""

from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable
from dataclasses import MISSING, Field, dataclass, field, fields
from typing import Any

TRUE = ("1", "true", "on", "yes")
FALSE = ("0", "false", "off", "no")


class _Required:
    def __repr__(self) -> str:
        return "REQUIRED"


REQUIRED: Any = _Required()  # a declared field with no default must be given


@dataclass(frozen=True)
class FieldSpec:
    """What a declared field accepts; `name` is its variable or key."""

    name: str
    default: Any = REQUIRED
    minimum: float | None = None
    choices: tuple[str, ...] | None = None
    parse: Callable[[str], Any] | None = None
    secret: bool = False
    credential: bool = False  # also read from `nameFromEnv` / `nameFromFile` (spec keys)
    section: bool = False  # a nested mapping or list its owner reads; declared so it is known


def declare(
    name: str,
    default: Any = REQUIRED,
    *,
    default_factory: Callable[[], Any] | None = None,
    minimum: float | None = None,
    choices: tuple[str, ...] | None = None,
    parse: Callable[[str], Any] | None = None,
    secret: bool = False,
    credential: bool = False,
    section: bool = False,
) -> Any:
    """A dataclass field read from `name`. A required field's attribute defaults to None, so
    a result dataclass can still be built positionally in tests."""
    if default is MISSING:
        default = REQUIRED if default_factory is None else None
    spec = FieldSpec(name, default, minimum, choices, parse, secret or credential, credential, section)
    metadata = {"field": spec}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=None if default is REQUIRED else default, metadata=metadata)


def declared(cls: type) -> list[tuple[Field[Any], FieldSpec]]:
    """The fields of dataclass `cls` that name their source, in declaration order."""
    return [(f, f.metadata["field"]) for f in fields(cls) if "field" in f.metadata]


def type_hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def convert(spec: FieldSpec, hint: Any, value: Any) -> Any:
    """`value` as the field's type, within its choices and bounds; ValueError says what it
    must be instead."""
    parsed = spec.parse(value) if spec.parse is not None else parse_as(without_none(hint), value)
    if spec.choices is not None:
        wanted = parsed if isinstance(parsed, tuple) else (parsed,)
        if not wanted or any(v not in spec.choices for v in wanted):
            raise ValueError(f"must be one of {', '.join(spec.choices)}")
    if spec.minimum is not None and isinstance(parsed, int | float) and parsed < spec.minimum:
        raise ValueError(f"must be at least {spec.minimum:g}")
    return parsed


def problem(path: str, spec: FieldSpec, value: Any, error: Exception) -> str:
    """The error line for a bad value: its path, what it must be, and what it was unless secret."""
    return f"{path} {error}" if spec.secret else f"{path} {error}, not {value!r}"


def without_none(hint: Any) -> Any:
    """`X` from `X | None`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def parse_as(hint: Any, value: Any) -> Any:
    """One parser per type, for strings and YAML scalars alike."""
    if hint is bool:
        return _boolean(value)
    if hint is int:
        number = _number(value, "must be a whole number")
        if number != int(number):
            raise ValueError("must be a whole number")
        return int(number)
    if hint is float:
        return _number(value, "must be a number")
    if hint is str:
        if not isinstance(value, str) or not value:
            raise ValueError("must be a non-empty string")
        return value
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        parts = value.split(",") if isinstance(value, str) else value
        if not isinstance(parts, list | tuple):
            raise ValueError("must be a list")
        stripped = [part.strip() if isinstance(part, str) else part for part in parts]
        return tuple(parse_as(item, part) for part in stripped if part != "")
    raise TypeError(f"no parser for {hint}: give the field a parse function")


def _boolean(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in TRUE + FALSE:
        return value.lower() in TRUE
    raise ValueError("must be true or false (on or off)")


def _number(value: Any, must: str) -> float:
    if isinstance(value, bool):  # YAML's true is an int to Python; never a count
        raise ValueError(must)
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise ValueError(must) from None
    if not math.isfinite(number):
        raise ValueError(must)
    return number
