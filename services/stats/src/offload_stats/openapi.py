"""OpenAPI 3.1 description of the stats read API."""

from __future__ import annotations

from typing import Any

from offload_core import problems
from offload_stats.counting import SERIES

_PROBLEM = problems.openapi_response("Invalid parameter")


def _whole_number(name: str, maximum: int) -> dict[str, Any]:
    """An optional query parameter: a whole number from 1 to `maximum`."""
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum},
    }


def _limit() -> dict[str, Any]:
    return _whole_number("limit", 100)


def _list(key: str) -> dict[str, Any]:
    item = {
        "type": "object",
        "required": [key, "count"],
        "properties": {key: {"type": "string"}, "count": {"type": "integer"}},
    }
    return {
        "description": "Top entries, most frequent first.",
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["items"],
                    "properties": {"items": {"type": "array", "items": item}},
                }
            }
        },
    }


def _minutes() -> dict[str, Any]:
    return _whole_number("minutes", 1440)


def _welcome_delay() -> dict[str, Any]:
    seconds = {"type": ["number", "null"], "minimum": 0}
    point = {
        "type": "object",
        "required": ["minute", "mails", "p50_seconds", "p95_seconds"],
        "properties": {
            "minute": {"type": "string"},
            "mails": {"type": "integer", "minimum": 0},
            "p50_seconds": seconds,
            "p95_seconds": seconds,
        },
    }
    return {
        "description": (
            "Time from an accepted signup to its welcome email, per minute of sending, oldest"
            " first: the mails that carried their signup's acceptance time, and the median and"
            " 95th percentile of their delays (null in a minute without one)."
        ),
        "content": {
            "application/json": {
                "schema": {
                    "type": "object",
                    "required": ["minutes", "points"],
                    "properties": {
                        "minutes": {"type": "integer"},
                        "points": {"type": "array", "items": point},
                    },
                }
            }
        },
    }


def document() -> dict[str, Any]:
    counts = {"type": "object", "additionalProperties": {"type": "integer"}}
    return {
        "openapi": "3.1.0",
        "info": {"title": "Offload stats API", "version": "1.0.0"},
        "paths": {
            "/api/v1/stats": {
                "get": {
                    "operationId": "summary",
                    "responses": {
                        "200": {
                            "description": "Totals.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["requests", "signups", "mails"],
                                        "properties": {
                                            "requests": {
                                                "type": "object",
                                                "properties": {
                                                    "total": {"type": "integer"},
                                                    "by_status_class": counts,
                                                },
                                            },
                                            "signups": {
                                                "type": "object",
                                                "properties": {
                                                    "total": {"type": "integer"},
                                                    "by_fruit": counts,
                                                    "by_lane": counts,
                                                },
                                            },
                                            "mails": {
                                                "type": "object",
                                                "properties": {
                                                    "sent": {"type": "integer"},
                                                    "failed": {"type": "integer"},
                                                    "suppressed": {"type": "integer"},
                                                },
                                            },
                                        },
                                    }
                                }
                            },
                        }
                    },
                }
            },
            "/api/v1/stats/user-agents": {
                "get": {
                    "operationId": "userAgents",
                    "parameters": [_limit()],
                    "responses": {"200": _list("user_agent"), "400": _PROBLEM},
                }
            },
            "/api/v1/stats/paths": {
                "get": {
                    "operationId": "paths",
                    "parameters": [_limit()],
                    "responses": {"200": _list("path"), "400": _PROBLEM},
                }
            },
            "/api/v1/stats/timeseries": {
                "get": {
                    "operationId": "timeseries",
                    "parameters": [
                        {
                            "name": "metric",
                            "in": "query",
                            "required": False,
                            "schema": {"type": "string", "enum": list(SERIES)},
                        },
                        _minutes(),
                    ],
                    "responses": {
                        "200": {
                            "description": "One point per minute, oldest first.",
                            "content": {
                                "application/json": {
                                    "schema": {
                                        "type": "object",
                                        "required": ["metric", "minutes", "points"],
                                        "properties": {
                                            "metric": {"type": "string"},
                                            "minutes": {"type": "integer"},
                                            "points": {
                                                "type": "array",
                                                "items": {
                                                    "type": "object",
                                                    "required": ["minute", "count"],
                                                    "properties": {
                                                        "minute": {"type": "string"},
                                                        "count": {"type": "integer"},
                                                    },
                                                },
                                            },
                                        },
                                    }
                                }
                            },
                        },
                        "400": _PROBLEM,
                    },
                }
            },
            "/api/v1/stats/welcome-delay": {
                "get": {
                    "operationId": "welcomeDelay",
                    "parameters": [_minutes()],
                    "responses": {"200": _welcome_delay(), "400": _PROBLEM},
                }
            },
        },
        "components": {"schemas": {"Problem": problems.SCHEMA}},
    }
