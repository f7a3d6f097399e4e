"""Structured logs: one JSON object per line, with message and correlation ids.

`OFFLOAD_LOG_FORMAT=text` gives plain lines for a terminal; `OFFLOAD_LOG_LEVEL` sets
the level. Pass fields through `extra={"fields": {...}}` so they land as JSON keys.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass

from offload_core import tracing
from offload_core.settings import ConfigError, from_env, setting

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def _log_format(raw: str) -> str:
    """json or text"""
    value = raw.strip().lower()
    if value not in ("json", "text"):
        raise ValueError("must be json or text")
    return value


def _log_level(raw: str) -> str:
    """DEBUG, INFO, WARNING, ERROR or CRITICAL"""
    value = raw.strip().upper()
    if value not in LEVELS:
        raise ValueError(f"must be one of {', '.join(LEVELS)}")
    return value


@dataclass(frozen=True)
class LogSettings:
    """How every process logs."""

    format: str = setting("OFFLOAD_LOG_FORMAT", "json", parse=_log_format)
    level: str = setting("OFFLOAD_LOG_LEVEL", "INFO", parse=_log_level)


def log_settings(env: Mapping[str, str]) -> tuple[LogSettings, list[str]]:
    """The settings, and what was wrong with them: logging is what reports bad settings,
    so a bad one here falls back to its default instead of stopping the process."""
    try:
        return from_env(LogSettings, env), []
    except ConfigError:
        pass
    usable: dict[str, str] = {}
    problems = []
    for variable in ("OFFLOAD_LOG_FORMAT", "OFFLOAD_LOG_LEVEL"):
        try:
            from_env(LogSettings, {variable: env.get(variable, "")})
            usable[variable] = env.get(variable, "")
        except ConfigError as error:
            problems.append(f"{error}; using the default")
    return from_env(LogSettings, usable), problems


class JsonFormatter(logging.Formatter):
    def __init__(self, service: str) -> None:
        super().__init__()
        self.service = service

    def format(self, record: logging.LogRecord) -> str:
        entry = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "service": self.service,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        fields = getattr(record, "fields", None)
        if fields:
            entry.update(fields)
        entry.update(tracing.current_ids())
        if record.exc_info:
            entry["error"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


class TextFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "fields", None)
        if fields:
            line += " " + " ".join(f"{k}={v}" for k, v in fields.items())
        return line


def configure_logging(service: str) -> None:
    settings, problems = log_settings(os.environ)
    handler = logging.StreamHandler(sys.stderr)
    if settings.format == "text":
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(settings.level)
    for problem in problems:
        logging.getLogger("offload").warning(problem)
    # pika logs every failed connection attempt as several ERROR lines; the publisher and
    # runner log one line of their own per outage instead.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
