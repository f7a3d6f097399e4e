"""Stats read API (gunicorn): JSON summaries, top lists, time series, and an HTML page with charts."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, Flask, Response, current_app, jsonify, render_template, request
from werkzeug.exceptions import HTTPException

from offload_core import page_headers, problems
from offload_core import status_port as status_port_split
from offload_core.settings import from_env
from offload_core.status_routes import status_blueprint
from offload_stats import charts, queries
from offload_stats.config import StatsConfig
from offload_stats.counting import SERIES
from offload_stats.store import StatsStore, open_store

log = logging.getLogger("offload.stats.api")


class BadParameter(Exception):
    def __init__(self, name: str, reason: str) -> None:
        super().__init__(f"{name} {reason}")
        self.name, self.reason = name, reason


def _single_param(name: str) -> str | None:
    values = request.args.getlist(name)
    if len(values) > 1:  # ?limit=1&limit=2 would otherwise quietly use the first
        raise BadParameter(name, "must be given once")
    return values[0] if values else None


def _int_param(name: str, default: int, low: int, high: int) -> int:
    raw = _single_param(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise BadParameter(name, "must be a whole number") from None
    if not low <= value <= high:
        raise BadParameter(name, f"must be between {low} and {high}")
    return value


def _problem(status: int, title: str, detail: str, **extra: Any) -> Response:
    document = problems.body(status, title, detail, kind=problems.kind_of(title), **extra)
    response = jsonify(document)
    response.status_code = status
    response.mimetype = problems.MEDIA_TYPE
    return response


def current_store() -> StatsStore:
    """The app's store (create_app keeps it in the app's extensions)."""
    return current_app.extensions["offload_stats_store"]


api = Blueprint("api", __name__)


@api.get("/api/v1/stats")
def stats_summary() -> Any:
    return jsonify(queries.summary(current_store()))


@api.get("/api/v1/stats/user-agents")
def user_agents() -> Any:
    limit = _int_param("limit", 10, 1, 100)
    items = [{"user_agent": k, "count": v} for k, v in queries.top(current_store(), "user_agent", limit)]
    return jsonify({"items": items})


@api.get("/api/v1/stats/paths")
def paths() -> Any:
    limit = _int_param("limit", 10, 1, 100)
    items = [{"path": k, "count": v} for k, v in queries.top(current_store(), "path", limit)]
    return jsonify({"items": items})


@api.get("/api/v1/stats/timeseries")
def timeseries() -> Any:
    metric = _single_param("metric")
    metric = "requests" if metric is None else metric  # given but empty is an error, like any other
    if metric not in SERIES:
        raise BadParameter("metric", f"must be one of {', '.join(SERIES)}")
    minutes = _int_param("minutes", 60, 1, 1440)
    return jsonify(
        {"metric": metric, "minutes": minutes, "points": queries.timeseries(current_store(), metric, minutes)}
    )


@api.get("/api/v1/stats/welcome-delay")
def welcome_delay() -> Any:
    minutes = _int_param("minutes", 60, 1, 1440)
    points = [
        {
            "minute": queries.minute_label(point.minute),
            "mails": point.mails,
            "p50_seconds": _rounded(point.p50_seconds),
            "p95_seconds": _rounded(point.p95_seconds),
        }
        for point in queries.welcome_delays(current_store(), minutes)
    ]
    return jsonify({"minutes": minutes, "points": points})


def _rounded(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds, 3)


@api.get("/openapi.json")
def openapi() -> Any:
    from offload_stats.openapi import document

    return jsonify(document())


page = Blueprint("page", __name__)


@page.get("/stats")
def stats_page() -> Any:
    data = queries.summary(current_store())
    return render_template(
        "stats.html",
        summary=data,
        fruits=charts.bars(sorted(data["signups"]["by_fruit"].items(), key=lambda kv: -kv[1])),
        agents=charts.bars(queries.top(current_store(), "user_agent", 8)),
        paths=charts.bars(queries.top(current_store(), "path", 8)),
        requests=charts.columns(queries.timeseries(current_store(), "requests", 60)),
        signups=charts.columns(queries.timeseries(current_store(), "signups", 60)),
        welcome=charts.delay_columns(queries.welcome_delays(current_store(), 60)),
    )


def readiness() -> tuple[dict[str, Any], int]:
    """Ready while the store answers."""
    try:
        current_store().ping()
    except Exception as exc:  # the store's own error says what is wrong: in the log only
        log.warning("not ready: the store does not answer: %s", exc)
        return {"status": "not ready", "store": "unreachable"}, 503
    return {"status": "ready"}, 200


def bad_parameter(exc: BadParameter) -> Any:
    return _problem(400, "Invalid parameter", str(exc), errors=[{"name": exc.name, "reason": exc.reason}])


def http_error(exc: HTTPException) -> Any:
    response = _problem(exc.code or 500, exc.name, exc.description or exc.name)
    for name, value in exc.get_headers():  # e.g. Allow on a 405 (RFC 9110)
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def unexpected(exc: Exception) -> Any:
    log.exception("unexpected error")
    return _problem(503, "Store unavailable", "the stats store did not answer; try again shortly")


def create_app(store: StatsStore | None = None, status_port: int | None = None) -> Flask:
    """The read API; `status_port`: gunicorn's second port, the only one that serves
    /metrics, /healthz and /readyz (None: every path on the one port)."""
    app = Flask(__name__)
    app.extensions["offload_stats_store"] = store or open_store(from_env(StatsConfig).store_url)
    status_port_split.install(app, status_port)
    app.json.sort_keys = False  # type: ignore[attr-defined]  # Flask types app.json as the provider base class
    page_headers.install(app)
    for blueprint in (api, page, status_blueprint(readiness)):
        app.register_blueprint(blueprint)
    app.register_error_handler(BadParameter, bad_parameter)
    app.register_error_handler(HTTPException, http_error)
    app.register_error_handler(Exception, unexpected)
    return app
