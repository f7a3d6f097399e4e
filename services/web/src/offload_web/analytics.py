"""Analytics middleware: every request becomes an `http.request` event.

The IronMQ seed's idea, kept off the request path: the event goes into the
publisher's fire-and-forget buffer, so a slow or absent broker never slows a page;
when the buffer is full the event is dropped and counted
(offload_publisher_dropped_total). Only an allowlist of headers is reported: cookies,
authorization and other credentials never leave the web.
"""

from __future__ import annotations

import logging
import time

from flask import Flask, Response, g, request

from offload_core.envelope import Envelope
from offload_core.publisher import Publisher

log = logging.getLogger("offload.web.analytics")

NOT_REPORTED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
REPORTED_HEADERS = ("accept", "accept-language", "content-type", "origin", "referer", "x-request-id")


def _safe_referer(value: str) -> str:
    # Query strings and fragments carry tokens often enough: keep scheme, host and path.
    return value.split("?", 1)[0].split("#", 1)[0]


def request_event(response: Response, duration: float) -> Envelope:
    headers = {}
    for name in REPORTED_HEADERS:
        value = request.headers.get(name)
        if value:
            headers[name] = (_safe_referer(value) if name == "referer" else value)[:1024]
    return Envelope(
        "http.request",
        {
            "method": request.method[:16],
            "path": request.path[:2048],
            "status": response.status_code,
            "duration_ms": round(duration * 1000, 3),
            "user_agent": request.headers.get("User-Agent", "")[:512],
            "headers": headers,
        },
    )


def install(app: Flask, publisher: Publisher) -> None:
    @app.after_request
    def report(response: Response) -> Response:
        if request.path in NOT_REPORTED_PATHS:
            return response
        started = g.get("started", time.perf_counter())
        try:
            publisher.publish_nowait(
                request_event(response, time.perf_counter() - started), correlation_id=g.get("request_id")
            )
        except Exception:  # analytics must never break a page
            log.exception("could not report request")
        return response
