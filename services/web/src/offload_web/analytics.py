"""Analytics middleware: every request is reported to stats.

The idea of Iron.io's "Using IronMQ for Delayed Processing" article, kept off the
request path. A WSGI middleware around the Flask app
(cheaper than a Flask hook: no request object, no hook dispatch) appends a small report
of each request to this worker's collector; a flusher thread publishes what was collected as one
`http.request.batch` event every `interval` (a quarter second by default), through the
publisher's fire-and-forget buffer. One message per request cost the web and the broker
as much CPU as serving a plain page (docs/benchmarks.md); one per worker per interval
costs next to nothing. Stats applies a batch with its dedupe mark in one step, so the
message id is all it remembers.

A report carries only what stats counts, in bounded sets: the route the request matched
(the app's rule, `(unmatched)` for any other path) and the user agent's family
(offload_core.agents), never the raw path or header, so a stranger's made-up paths and
agents add no stored key.

A slow or absent broker never slows a page: when the publisher's buffer is full the batch
is dropped and its requests counted (offload_web_analytics_dropped_total). Only an
allowlist of headers is reported: cookies, authorization and other credentials never
leave the web.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from typing import Any

from flask import Flask
from prometheus_client import Counter

from offload_core.agents import agent_family
from offload_core.envelope import Envelope
from offload_core.publisher import Publisher
from offload_web.bookkeeping import ROUTE_ENVIRON_KEY, UNMATCHED

log = logging.getLogger("offload.web.analytics")

NOT_REPORTED_PATHS = frozenset({"/metrics", "/healthz", "/readyz"})
REPORTED_HEADERS = ("accept", "accept-language", "content-type", "origin", "referer", "x-request-id")
# The contract's ceiling (schemas/http.request.batch/1.json) is 1000 requests per event.
MAX_BATCH = 500

REPORTS_DROPPED = Counter(
    "offload_web_analytics_dropped_total",
    "Request reports lost because the publisher's buffer was full or it was closing.",
)


def _safe_referer(value: str) -> str:
    # Query strings and fragments carry tokens often enough: keep scheme, host and path.
    return value.split("?", 1)[0].split("#", 1)[0]


# WSGI environ keys of the reported headers: reading the environ directly costs a fraction
# of werkzeug's header lookups, and this runs on every request.
_HEADER_KEYS = tuple((name, "HTTP_" + name.upper().replace("-", "_")) for name in REPORTED_HEADERS)
_HEADER_KEYS = tuple((name, "CONTENT_TYPE" if name == "content-type" else key) for name, key in _HEADER_KEYS)


class _UtcClock:
    """RFC 3339 UTC times with milliseconds, formatting the seconds once per second."""

    def __init__(self) -> None:
        self._second = -1
        self._prefix = ""

    def now(self) -> str:
        now = time.time()
        second = int(now)
        if second != self._second:  # a race here only formats the same second twice
            self._prefix = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            self._second = second
        return f"{self._prefix}.{int((now - second) * 1000):03d}Z"


_clock = _UtcClock()


def request_report(
    environ: dict[str, Any], status: str, response_headers: Iterable[tuple[str, str]], duration: float
) -> dict:
    """One request, as an item of http.request.batch (its id is given by RequestReports.add)."""
    headers = {}
    for name, key in _HEADER_KEYS:
        value = environ.get(key)
        if value:
            headers[name] = (_safe_referer(value) if name == "referer" else value)[:1024]
    report = {
        "occurred_at": _clock.now(),
        "method": environ.get("REQUEST_METHOD", "")[:16],
        "path": environ.get(ROUTE_ENVIRON_KEY, UNMATCHED),
        "status": int(status[:3]),
        "duration_ms": int(duration * 1_000_000) / 1000,  # whole microseconds; round() costs 4x
        "user_agent": agent_family(environ.get("HTTP_USER_AGENT", "")),
        "headers": headers,
    }
    for name, value in response_headers:
        if name == "X-Request-ID":  # the id the app accepted or generated, as it answered
            if value:
                report["request_id"] = value[:200]
            break
    return report


class RequestReports:
    """This worker's collected reports, published as one event per interval or per MAX_BATCH."""

    def __init__(self, publisher: Publisher, *, interval: float = 0.25) -> None:
        self.publisher = publisher
        self.interval = interval
        self._reports: list[dict] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closed = False
        self._flusher = threading.Thread(target=self._flush_periodically, name="analytics-flush", daemon=True)
        # Report ids: unique per collector (one per worker process), then a counter; cheaper
        # on every request than a uuid4 each.
        self._id_prefix = uuid.uuid4().hex + "-"
        self._sequence = itertools.count(1)

    def start(self) -> RequestReports:
        self._flusher.start()
        return self

    def add(self, report: dict) -> None:
        with self._lock:
            report["id"] = self._id_prefix + str(next(self._sequence))
            self._reports.append(report)
            full = len(self._reports) >= MAX_BATCH
        if full:
            self._wake.set()

    def flush(self) -> int:
        """Publish what was collected; returns how many reports went to the publisher."""
        with self._lock:
            reports, self._reports = self._reports, []
        sent = 0
        for start in range(0, len(reports), MAX_BATCH):
            chunk = reports[start : start + MAX_BATCH]
            try:
                accepted = self.publisher.publish_nowait(Envelope("http.request.batch", {"requests": chunk}))
            except Exception:  # analytics must never take the worker down
                log.exception("could not report %d requests", len(chunk))
                accepted = False
            if accepted:
                sent += len(chunk)
            else:
                REPORTS_DROPPED.inc(len(chunk))
        return sent

    def close(self, timeout: float = 5.0) -> None:
        """Stop the flusher and hand the last reports to the publisher (before it closes)."""
        self._closed = True
        self._wake.set()
        if self._flusher.is_alive():
            self._flusher.join(timeout)
        self.flush()

    def _flush_periodically(self) -> None:
        while not self._closed:
            self._wake.wait(self.interval)
            self._wake.clear()
            self.flush()


class ReportingMiddleware:
    """WSGI middleware: a report of every request (but health checks and metrics) to `reports`."""

    def __init__(self, app: Callable[..., Iterable[bytes]], reports: RequestReports) -> None:
        self.app = app
        self.reports = reports

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if environ.get("PATH_INFO") in NOT_REPORTED_PATHS:
            return self.app(environ, start_response)
        started = time.perf_counter()

        def reporting_start_response(status: str, headers: list[tuple[str, str]], *exc_info: Any) -> Any:
            try:
                self.reports.add(request_report(environ, status, headers, time.perf_counter() - started))
            except Exception:  # analytics must never break a page
                log.exception("could not report request")
            return start_response(status, headers, *exc_info)

        return self.app(environ, reporting_start_response)


def install(app: Flask, publisher: Publisher, *, interval: float = 0.25) -> RequestReports:
    reports = RequestReports(publisher, interval=interval).start()
    app.extensions["offload_analytics"] = reports
    app.wsgi_app = ReportingMiddleware(app.wsgi_app, reports)  # type: ignore[method-assign]  # Flask's documented way to wrap its WSGI app
    return reports
