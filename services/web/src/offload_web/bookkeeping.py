"""Every request: an id, a body read under a deadline, a duration metric."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time

from flask import Flask, Response, g, request
from prometheus_client import Histogram
from werkzeug.exceptions import ClientDisconnected, RequestTimeout

from offload_core.ids import random_uuid

log = logging.getLogger("offload.web")

# The route a request matched, for the analytics report (a bounded set: the app's rules).
ROUTE_ENVIRON_KEY = "offload.route"
UNMATCHED = "(unmatched)"
REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_DURATION = Histogram(
    "offload_web_request_duration_seconds",
    "Time to answer an HTTP request, by route and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def init_app(app: Flask, *, body_timeout_seconds: float) -> None:
    def start_request() -> None:
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.match(given) else random_uuid().hex
        receive_body(body_timeout_seconds)

    app.before_request(start_request)
    app.after_request(finish_request)


def receive_body(timeout: float) -> None:
    """Read the body now, under a deadline (413 first if it is declared too large): a
    stalled upload must not hold one of gunicorn's threads as long as the client likes."""
    if not request.content_length or request.method in ("GET", "HEAD"):
        return
    raw_socket = request.environ.get("gunicorn.socket")
    if raw_socket is not None:
        raw_socket.settimeout(timeout)
    try:
        request.get_data(cache=True)
    except (ClientDisconnected, OSError) as exc:  # werkzeug reports the timeout as a disconnect
        log.warning("request body not received in time", extra={"fields": {"error": repr(exc)}})
        if raw_socket is not None:
            # The rest of the body may still come: gunicorn would read it as the next
            # request. Closing our reading side ends the connection after the 408.
            with contextlib.suppress(OSError):
                raw_socket.shutdown(socket.SHUT_RD)
        raise RequestTimeout(f"the body did not arrive within {timeout:g} seconds") from None


def finish_request(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id", "")
    route = request.url_rule.rule if request.url_rule else UNMATCHED
    request.environ[ROUTE_ENVIRON_KEY] = route
    REQUEST_DURATION.labels(request.method, route, str(response.status_code)).observe(
        time.perf_counter() - g.get("started", time.perf_counter())
    )
    return response
