"""docs/settings.md from the services' setting tables: every variable, its default and
what it accepts. `python -m offload_core.settings_reference > docs/settings.md`; a test
fails when the file is stale."""

from __future__ import annotations

import importlib
import typing
from dataclasses import MISSING

from offload_core.fields import REQUIRED, FieldSpec, declared, without_none

# (who reads it, module, class): every table of settings in the stack.
TABLES = (
    ("every service", "offload_core.config", "CoreConfig"),
    ("every service (logs)", "offload_core.logs", "LogSettings"),
    ("every service (traces)", "offload_core.tracing", "TracingSettings"),
    ("web", "offload_web.config", "WebConfig"),
    ("web (gunicorn)", "offload_web.config", "WebServerConfig"),
    ("mailer", "offload_mailer.config", "MailerConfig"),
    ("stats", "offload_stats.config", "StatsConfig"),
    ("stats API (gunicorn)", "offload_stats.config", "StatsServerConfig"),
    ("autoscaler", "offload_autoscaler.main", "AutoscalerSettings"),
    ("external scaler (KEDA)", "offload_autoscaler.external_main", "ExternalScalerSettings"),
)


def _default(f: typing.Any, spec: FieldSpec) -> str:
    if spec.default is REQUIRED:
        return "(required)"
    if f.default is not MISSING:
        value = f.default
    else:
        return "(this host's name)"  # the only default_factory
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, tuple):
        return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


def _accepts(spec: FieldSpec, hint: typing.Any) -> str:
    parts = []
    hint = without_none(hint)
    listed = typing.get_origin(hint) is tuple
    if spec.choices:
        parts.append(("comma-separated, each " if listed else "") + " or ".join(spec.choices))
    elif spec.parse is not None:
        parts.append((spec.parse.__doc__ or "").strip().split("\n")[0] or "see the service")
    else:
        name = "comma-separated list" if listed else getattr(hint, "__name__", str(hint))
        parts.append(
            {"bool": "on or off", "int": "whole number", "float": "number", "str": "text"}.get(name, name)
        )
    if spec.minimum is not None:
        parts.append(f"at least {spec.minimum:g}")
    if spec.secret:
        parts.append(f"or a file named by {spec.name}_FILE")
    return ", ".join(p for p in parts if p)


def render() -> str:
    lines = [
        "# Settings",
        "",
        "Every environment variable the services read, generated from their setting tables",
        "(`python -m offload_core.settings_reference`). An unset or empty variable keeps its",
        "default; a value the service cannot use stops it at start with one line naming the",
        "variable. The README explains the ones most deployments set.",
        "",
        "| variable | read by | default | accepts |",
        "|---|---|---|---|",
    ]
    for who, module, name in TABLES:
        cls = getattr(importlib.import_module(module), name)
        hints = typing.get_type_hints(cls)
        for f, spec in declared(cls):
            row = (f"`{spec.name}`", who, f"`{_default(f, spec)}`", _accepts(spec, hints[f.name]))
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(render(), end="")
