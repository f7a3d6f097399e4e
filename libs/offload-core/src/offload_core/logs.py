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

from offload_core import tracing


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
    handler = logging.StreamHandler(sys.stderr)
    if os.environ.get("OFFLOAD_LOG_FORMAT", "json").lower() == "text":
        handler.setFormatter(TextFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter(service))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    level = os.environ.get("OFFLOAD_LOG_LEVEL", "").strip().upper() or "INFO"
    known = level in logging.getLevelNamesMapping()
    root.setLevel(level if known else logging.INFO)
    if not known:  # logging is what reports bad settings: it must not fail on one itself
        logging.getLogger("offload").warning(f"OFFLOAD_LOG_LEVEL={level!r} is not a level; using INFO")
    # pika logs every failed connection attempt as several ERROR lines; the publisher and
    # runner log one line of their own per outage instead.
    logging.getLogger("pika").setLevel(logging.CRITICAL)
