"""Settings from the environment, declared once per service as a table of fields.

Each field of a frozen dataclass names its variable, its default and what it accepts:

    @dataclass(frozen=True)
    class WebConfig:
        batch_limit: int = setting("OFFLOAD_WEB_BATCH_LIMIT", 100, minimum=1)

    config = from_env(WebConfig)  # os.environ, or any mapping

An unset or empty variable keeps the default. A value that does not parse, is out of
bounds or is not among the choices is a ConfigError that names the variable; a secret's
value is never repeated. Fields, types and parsing are the core's one field reader
(`fields.py`), which the autoscaler's ScaledObject spec reads through too.

Why not pydantic-settings: it would add pydantic to every image for a dozen flat fields,
and its errors name the field and echo the input, where ours must name the variable and
never show a password. This table is one small module the services share.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import MISSING
from pathlib import Path
from typing import Any, TypeVar

from offload_core.fields import (
    REQUIRED,
    FieldSpec,
    convert,
    declare,
    declared,
    problem,
    type_hints,
    without_none,
)

__all__ = ["ConfigError", "from_env", "from_env_or_exit", "parse_store_url", "setting", "without_none"]

Config = TypeVar("Config")


class ConfigError(ValueError):
    """A setting has a value the service cannot use; the message names the variable."""


def setting(variable: str, default: Any = MISSING, **accepts: Any) -> Any:
    """A dataclass field read from `variable` (`fields.declare`'s default_factory, minimum,
    choices, parse, secret). `parse` raises ValueError with what the value must be; a
    `secret` may also come from the file named by `variable`_FILE."""
    return declare(variable, default, **accepts)


def from_env(cls: type[Config], env: Mapping[str, str] | None = None, **fixed: Any) -> Config:
    """An instance of `cls` from `env` (os.environ by default); `fixed` values are not read."""
    env = os.environ if env is None else env
    hints = type_hints(cls)
    values: dict[str, Any] = {}
    for f, spec in declared(cls):
        if f.name in fixed:
            continue
        raw = _raw(spec, env)
        if not raw and spec.default is REQUIRED:
            raise ConfigError(f"{spec.name} is required")
        if raw:
            try:
                values[f.name] = convert(spec, hints[f.name], raw)
            except ValueError as exc:
                raise ConfigError(problem(spec.name, spec, raw, exc)) from None
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


def _raw(spec: FieldSpec, env: Mapping[str, str]) -> str:
    variable = spec.name
    if spec.secret:
        path = env.get(f"{variable}_FILE", "").strip()
        if path:
            try:
                return Path(path).read_text().strip()
            except OSError as exc:
                raise ConfigError(f"{variable}_FILE={path!r} cannot be read: {exc.strerror}") from None
        return env.get(variable, "")
    return env.get(variable, "").strip()
