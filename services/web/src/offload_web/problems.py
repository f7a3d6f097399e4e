"""Problem answers of the web's JSON API (the documents themselves: offload_core.problems)."""

from __future__ import annotations

from typing import Any

from flask import Response, json

from offload_core import problems


def problem(status: int, title: str, detail: str, *, kind: str, **extra: Any) -> Response:
    document = problems.body(status, title, detail, kind=kind, **extra)
    return Response(json.dumps(document), status=status, mimetype=problems.MEDIA_TYPE)


def invalid_fields(errors: dict[str, str], status: int = 422) -> Response:
    named = [{"name": field, "reason": reason} for field, reason in sorted(errors.items())]
    detail = "; ".join(f"{e['name']} {e['reason']}" for e in named)
    return problem(status, "Invalid fields", detail, kind="invalid-fields", errors=named)
