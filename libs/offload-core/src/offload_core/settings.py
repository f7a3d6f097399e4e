"""Settings from the environment, declared once per service as a table of fields.

Each field of a frozen dataclass names its variable, its default and what it accepts:

    @dataclass(frozen=True)
    class WebConfig:
        batch_limit: int = setting("OFFLOAD_WEB_BATCH_LIMIT", 100, minimum=1)

    config = from_env(WebConfig)  # os.environ, or any mapping

An unset or empty variable keeps the default. A value that does not parse, is out of
bounds or is not among the choices is a ConfigError that names the variable; a secret's
value is never repeated. The type comes from the annotation (str, int, float, bool,
tuple[str, ...], tuple[float, ...], or `X | None`); `parse` takes over for anything else.

Why not pydantic-settings: it would add pydantic to every image for a dozen flat fields,
and its errors name the field and echo the input, where ours must name the variable and
never show a password. This table is one small module the services share.
"""

from __future__ import annotations

import os
import sys
import types
import typing
from collections.abc import Callable, Mapping
from dataclasses import MISSING, Field, field, fields
from pathlib import Path
from typing import Any, TypeVar

Config = TypeVar("Config")

TRUE = ("1", "true", "on", "yes")
FALSE = ("0", "false", "off", "no")


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names the variable."""


def setting(
    variable: str,
    default: Any = MISSING,
    *,
    default_factory: Callable[[], Any] | None = None,
    minimum: float | None = None,
    choices: tuple[str, ...] | None = None,
    parse: Callable[[str], Any] | None = None,
    secret: bool = False,
) -> Any:
    """A dataclass field read from `variable`. `parse` raises ValueError with what the
    value must be; a `secret` may also come from the file named by `variable`_FILE."""
    metadata = {
        "variable": variable,
        "minimum": minimum,
        "choices": choices,
        "parse": parse,
        "secret": secret,
    }
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=metadata)
    return field(default=default, metadata=metadata)


def from_env(cls: type[Config], env: Mapping[str, str] | None = None, **fixed: Any) -> Config:
    """An instance of `cls` from `env` (os.environ by default); `fixed` values are not read."""
    env = os.environ if env is None else env
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for f in fields(cls):  # type: ignore[arg-type]  # cls is a dataclass; TypeVar hides it
        if f.name in fixed or "variable" not in f.metadata:
            continue
        raw = _raw(f, env)
        if raw:
            values[f.name] = _value(f, hints[f.name], raw)
    return cls(**values, **fixed)


def from_env_or_exit(cls: type[Config]) -> Config:
    """For gunicorn's config files: a bad setting ends the process with one line naming the
    variable, not gunicorn's traceback."""
    try:
        return from_env(cls)
    except ConfigError as exc:
        sys.exit(f"invalid configuration: {exc}")


def parse_store_url(raw: str) -> str:
    """sqlite:///path or redis://host:port/db"""
    if not raw.startswith(("sqlite:///", "redis://", "rediss://")):
        raise ValueError("must start with sqlite:/// or redis://")
    return raw


def _raw(f: Field[Any], env: Mapping[str, str]) -> str:
    variable = f.metadata["variable"]
    if f.metadata["secret"]:
        path = env.get(f"{variable}_FILE", "").strip()
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{variable}_FILE={path!r} cannot be read: {exc.strerror}") from None
        return env.get(variable, "")
    return env.get(variable, "").strip()


def _value(f: Field[Any], hint: Any, raw: str) -> Any:
    variable, minimum, choices = f.metadata["variable"], f.metadata["minimum"], f.metadata["choices"]
    shown = "(hidden)" if f.metadata["secret"] else repr(raw)
    try:
        if f.metadata["parse"] is not None:
            value = f.metadata["parse"](raw)
        else:
            value = _parse(without_none(hint), raw)
    except ValueError as exc:
        raise ConfigError(f"{variable}={shown} {exc}") from None
    if choices is not None:
        wanted = value if isinstance(value, tuple) else (value,)
        if not wanted or any(v not in choices for v in wanted):
            listed = ", ".join(choices[:-1]) + " or " + choices[-1] if len(choices) > 1 else choices[0]
            raise ConfigError(f"{variable}={shown} must be {listed}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"{variable}={shown} must be at least {minimum:g}")
    return value


def without_none(hint: Any) -> Any:
    """`X` from `X | None`."""
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        rest = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(rest) == 1:
            return rest[0]
    return hint


def _parse(hint: Any, raw: str) -> Any:
    if hint is bool:
        if raw.lower() in TRUE:
            return True
        if raw.lower() in FALSE:
            return False
        raise ValueError("must be on or off")
    if hint is int:
        try:
            return int(raw)
        except ValueError:
            raise ValueError("is not a whole number") from None
    if hint is float:
        try:
            return float(raw)
        except ValueError:
            raise ValueError("is not a number") from None
    if hint is str:
        return raw
    if typing.get_origin(hint) is tuple:
        item = typing.get_args(hint)[0]
        parts = [part.strip() for part in raw.split(",") if part.strip()]
        return tuple(_parse(item, part) for part in parts)
    raise TypeError(f"no parser for {hint}: give the setting a parse function")
