"""RFC 9457 problem details for the JSON API."""

from __future__ import annotations

from typing import Any

from flask import Response, json

PROBLEM_TYPE_BASE = "https://offload.dev/problems/"


def problem(status: int, title: str, detail: str, *, kind: str, **extra: Any) -> Response:
    body = {"type": PROBLEM_TYPE_BASE + kind, "title": title, "status": status, "detail": detail, **extra}
    return Response(json.dumps(body), status=status, mimetype="application/problem+json")


def invalid_fields(errors: dict[str, str], status: int = 422) -> Response:
    named = [{"name": field, "reason": reason} for field, reason in sorted(errors.items())]
    detail = "; ".join(f"{e['name']} {e['reason']}" for e in named)
    return problem(status, "Invalid fields", detail, kind="invalid-fields", errors=named)
