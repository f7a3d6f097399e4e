"""Error answers: problem+json under /api/ (the documents: offload_core.problems), an HTML
page elsewhere; never a stack trace."""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, g, json, render_template, request
from werkzeug.exceptions import HTTPException

from offload_core import problems
from offload_web import idempotency
from offload_web.config import web_config
from offload_web.publishing import BrokerUnavailable

log = logging.getLogger("offload.web")

BROKER_UNAVAILABLE_DETAIL = (
    "the message broker did not confirm in time. Ids in accepted_ids were accepted; ids in"
    " uncertain_ids reached the broker unconfirmed and may still take effect; nothing else"
    f" was sent. Retry with the same {idempotency.HEADER} header to make the retry the same"
    " signups."
)


def init_app(app: Flask) -> None:
    app.register_error_handler(BrokerUnavailable, broker_unavailable)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)


def problem(status: int, title: str, detail: str, *, kind: str, **extra: Any) -> Response:
    document = problems.body(status, title, detail, kind=kind, **extra)
    return Response(json.dumps(document), status=status, mimetype=problems.MEDIA_TYPE)


def invalid_fields(errors: dict[str, str], status: int = 422) -> Response:
    named = [{"name": field, "reason": reason} for field, reason in sorted(errors.items())]
    detail = "; ".join(f"{e['name']} {e['reason']}" for e in named)
    return problem(status, "Invalid fields", detail, kind="invalid-fields", errors=named)


def wants_problem() -> bool:
    return request.path.startswith("/api/")


def broker_unavailable(exc: BrokerUnavailable) -> Any:
    fields = {
        "error": str(exc),
        "request_id": g.get("request_id"),
        "accepted": len(exc.accepted),
        "uncertain": len(exc.uncertain),
    }
    log.warning("broker could not confirm", extra={"fields": fields})
    extra: dict[str, Any] = {}
    if exc.accepted:
        # Part of a batch was confirmed before the failure: say which, so a retry can skip them.
        extra["accepted_ids"] = exc.accepted
    if exc.uncertain:
        extra["uncertain_ids"] = exc.uncertain
    response = problem(
        503, "Broker unavailable", BROKER_UNAVAILABLE_DETAIL, kind="broker-unavailable", **extra
    )
    response.headers["Retry-After"] = str(web_config().retry_after_seconds)
    return response


def http_error(exc: HTTPException) -> Any:
    if not wants_problem():
        html = render_template("error.html", code=exc.code, title=exc.name, detail=exc.description)
        return Response(html, status=exc.code or 500, mimetype="text/html")
    response = problem(
        exc.code or 500, exc.name, exc.description or exc.name, kind=problems.kind_of(exc.name)
    )
    allowed = getattr(exc, "valid_methods", None)  # set on 405 Method Not Allowed
    if exc.code == 405 and allowed:
        response.headers["Allow"] = ", ".join(allowed)
    return response


def unexpected(exc: Exception) -> Any:
    log.exception("unexpected error", extra={"fields": {"request_id": g.get("request_id")}})
    if wants_problem():
        return problem(500, "Internal error", "something went wrong on our side", kind="internal")
    return render_template("error.html", code=500, title="Internal error", detail="Please try again."), 500
