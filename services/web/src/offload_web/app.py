"""Flask application factory: signup form, JSON API, health, metrics, OpenAPI.

A signup is accepted (303 / 202) only after RabbitMQ confirmed its `signup.created`
message; if the broker cannot confirm within the timeout the answer is 503 with
Retry-After, never a hang and never an acceptance that was not confirmed.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import time
import uuid
from concurrent.futures import Future
from typing import Any

from flask import Flask, Response, g, jsonify, redirect, render_template, request
from prometheus_client import Histogram
from werkzeug.exceptions import ClientDisconnected, HTTPException, RequestTimeout

from offload_core.config import CoreConfig
from offload_core.envelope import Envelope
from offload_core.metrics import render_latest
from offload_core.publisher import Publisher, PublishError, PublishTimeout
from offload_core.topology import stack_topology
from offload_web import analytics, idempotency
from offload_web.config import WebConfig
from offload_web.openapi import openapi_document
from offload_web.problems import invalid_fields, problem
from offload_web.signups import FRUITS, NAME_MAX, Signup, validate_signup

log = logging.getLogger("offload.web")

REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
REQUEST_DURATION = Histogram(
    "offload_web_request_duration_seconds",
    "Time to answer an HTTP request, by route and status.",
    ["method", "route", "status"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
FORM_FIELD_LIMIT = 4096


class BrokerUnavailable(Exception):
    """Not every signup was confirmed. `accepted`: confirmed ids; `uncertain`: written to the
    broker but unconfirmed, so they may still take effect (a retry with the same
    Idempotency-Key maps to the same ids). Every other id was withdrawn, never sent."""

    def __init__(self, cause: Exception, accepted: list[str], uncertain: list[str]) -> None:
        super().__init__(str(cause))
        self.accepted = accepted
        self.uncertain = uncertain


def create_app(
    publisher: Publisher | None = None,
    web_config: WebConfig | None = None,
    core_config: CoreConfig | None = None,
) -> Flask:
    web_config = web_config or WebConfig.from_env()
    core_config = core_config or CoreConfig.from_env(service_name="web")
    if publisher is None:
        topology = stack_topology(core_config.delay_tiers, core_config.delivery_limit)
        publisher = Publisher(core_config, topology, name="web").start()
    if not web_config.publish_signups:
        log.warning("OFFLOAD_WEB_PUBLISH=off: signups are NOT sent to the broker (benchmark mode)")

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = web_config.max_body_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = web_config.max_body_bytes
    app.extensions["offload_publisher"] = publisher
    app.json.sort_keys = False  # type: ignore[attr-defined]

    def publish_signups(signups: list[Signup], lane: str, key: str | None) -> list[str]:
        """Publish every signup, pipelined, and wait for all confirms; their ids in order.
        With an idempotency key the ids are derived from it, so a retry repeats them."""
        payloads = [s.data(lane) for s in signups]
        if key is None:
            envelopes = [Envelope("signup.created", p) for p in payloads]
        else:
            ids = idempotency.signup_ids(key, lane, payloads)
            envelopes = [Envelope("signup.created", p, id=i) for p, i in zip(payloads, ids, strict=True)]
        if not web_config.publish_signups:
            return [e.id for e in envelopes]
        futures: list[Future[None]] = [
            publisher.publish_async(e, lane=lane, correlation_id=g.request_id) for e in envelopes
        ]
        deadline = time.monotonic() + core_config.confirm_timeout
        accepted: list[str] = []
        uncertain: list[str] = []
        failure: Exception | None = None
        for envelope, future in zip(envelopes, futures, strict=True):
            try:
                publisher.wait(future, max(0.0, deadline - time.monotonic()))
                accepted.append(envelope.id)
            except PublishError as exc:
                failure = failure or exc
                if not (isinstance(exc, PublishTimeout) and exc.withdrawn):
                    uncertain.append(envelope.id)
        if failure is not None:
            raise BrokerUnavailable(failure, accepted, uncertain)
        # One line per signup, so an operator can follow any of them from the request id on.
        for signup_id in accepted:
            log.info(
                "signup accepted",
                extra={"fields": {"signup_id": signup_id, "request_id": g.request_id, "lane": lane}},
            )
        return accepted

    # -- request bookkeeping -----------------------------------------------------------

    @app.before_request
    def start_request() -> None:
        g.started = time.perf_counter()
        given = request.headers.get("X-Request-ID", "")
        g.request_id = given if REQUEST_ID.match(given) else uuid.uuid4().hex
        receive_body()

    def receive_body() -> None:
        """Read the body now, under a deadline (413 first if it is declared too large)."""
        if not request.content_length or request.method in ("GET", "HEAD"):
            return
        raw_socket = request.environ.get("gunicorn.socket")
        if raw_socket is not None:
            raw_socket.settimeout(web_config.body_timeout_seconds)
        try:
            request.get_data(cache=True)
        except (ClientDisconnected, OSError) as exc:  # werkzeug reports the timeout as a disconnect
            log.warning("request body not received in time", extra={"fields": {"error": repr(exc)}})
            if raw_socket is not None:
                # The rest of the body may still come: gunicorn would read it as the next
                # request. Closing our reading side ends the connection after the 408.
                with contextlib.suppress(OSError):
                    raw_socket.shutdown(socket.SHUT_RD)
            raise RequestTimeout(
                f"the body did not arrive within {web_config.body_timeout_seconds:g} seconds"
            ) from None

    @app.after_request
    def finish_request(response: Response) -> Response:
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        route = request.url_rule.rule if request.url_rule else "unmatched"
        REQUEST_DURATION.labels(request.method, route, str(response.status_code)).observe(
            time.perf_counter() - g.get("started", time.perf_counter())
        )
        return response

    if web_config.analytics:
        analytics.install(app, publisher)

    # -- HTML ------------------------------------------------------------------------------

    def render_form(
        values: dict[str, str], errors: dict[str, str], status: int, key: str | None = None
    ) -> tuple[str, int]:
        # A token per rendered form: submitting it twice (a retry after a 503, a double
        # click) is one signup.
        return render_template(
            "form.html",
            fruits=FRUITS,
            values=values,
            errors=errors,
            name_max=NAME_MAX,
            idempotency_key=key or uuid.uuid4().hex,
        ), status

    @app.get("/")
    def form() -> Any:
        return render_form({}, {}, 200)

    @app.post("/signup")
    def submit_form() -> Any:
        values = {f: request.form.get(f, "")[:FORM_FIELD_LIMIT] for f in ("name", "email", "fruit")}
        key = idempotency.parse_key(request.form.get(idempotency.FORM_FIELD))
        if isinstance(key, idempotency.KeyProblem):
            key = None  # a mangled token only loses the retry protection, not the signup
        signup, errors = validate_signup(values)
        if signup is None:
            return render_form(values, errors, 400, key)
        try:
            publish_signups([signup], "high", key)
        except BrokerUnavailable:
            log.warning("signup refused: broker unavailable", extra={"fields": {"request_id": g.request_id}})
            html = render_template(
                "unavailable.html", retry_after=web_config.retry_after_seconds, values=values, key=key
            )
            return html, 503, {"Retry-After": str(web_config.retry_after_seconds)}
        return redirect("/thanks", code=303)

    @app.get("/thanks")
    def thanks() -> Any:
        return render_template("thanks.html")

    # -- JSON API --------------------------------------------------------------------------

    def json_body() -> tuple[Any, Response | None]:
        if request.mimetype != "application/json":
            return None, problem(
                415,
                "Unsupported media type",
                "send the body as application/json",
                kind="unsupported-media-type",
            )
        body = request.get_json(silent=True)
        if body is None:
            return None, problem(
                400, "Malformed JSON", "the body is empty or not valid JSON", kind="malformed-json"
            )
        return body, None

    def idempotency_key() -> tuple[str | None, Response | None]:
        key = idempotency.parse_key(request.headers.get(idempotency.HEADER))
        if isinstance(key, idempotency.KeyProblem):
            return None, problem(
                400,
                "Invalid Idempotency-Key",
                f"the {idempotency.HEADER} header {key.detail}",
                kind="invalid-idempotency-key",
            )
        return key, None

    @app.post("/api/v1/signups")
    def create_signup() -> Any:
        key, error = idempotency_key()
        if error is not None:
            return error
        body, error = json_body()
        if error is not None:
            return error
        signup, errors = validate_signup(body)
        if signup is None:
            return invalid_fields(errors)
        [signup_id] = publish_signups([signup], "high", key)
        return jsonify({"id": signup_id, "status": "queued"}), 202

    @app.post("/api/v1/signups:batch")
    def create_signups_batch() -> Any:
        key, error = idempotency_key()
        if error is not None:
            return error
        body, error = json_body()
        if error is not None:
            return error
        if not isinstance(body, list) or not body:
            return invalid_fields({"(body)": "must be a non-empty array of signups"})
        if len(body) > web_config.batch_limit:
            return problem(
                422,
                "Batch too large",
                f"a batch holds at most {web_config.batch_limit} signups, this one has {len(body)}",
                kind="batch-too-large",
                limit=web_config.batch_limit,
            )
        signups, errors = [], {}
        for index, raw in enumerate(body):
            signup, item_errors = validate_signup(raw)
            signups.append(signup)
            errors.update({f"[{index}].{name}": reason for name, reason in item_errors.items()})
        if errors:
            return invalid_fields(errors)  # all or nothing: one bad item rejects the batch
        ids = publish_signups(signups, "low", key)
        return jsonify({"ids": ids, "status": "queued"}), 202

    @app.get("/openapi.json")
    def openapi() -> Any:
        return jsonify(openapi_document(web_config.batch_limit))

    # -- operations ------------------------------------------------------------------------

    @app.get("/healthz")
    def healthz() -> Any:
        return jsonify({"status": "ok"})

    @app.get("/readyz")
    def readyz() -> Any:
        if publisher.ready:
            return jsonify({"status": "ready"})
        return jsonify({"status": "not ready", "broker": publisher.last_error or "connecting"}), 503

    @app.get("/metrics")
    def metrics() -> Any:
        return Response(render_latest(), mimetype="text/plain; version=0.0.4")

    # -- errors ------------------------------------------------------------------------------

    def wants_problem() -> bool:
        return request.path.startswith("/api/")

    @app.errorhandler(BrokerUnavailable)
    def broker_unavailable(exc: BrokerUnavailable) -> Any:
        log.warning(
            "broker could not confirm",
            extra={
                "fields": {
                    "error": str(exc),
                    "request_id": g.get("request_id"),
                    "accepted": len(exc.accepted),
                    "uncertain": len(exc.uncertain),
                }
            },
        )
        extra: dict[str, Any] = {}
        if exc.accepted:
            # Part of a batch was confirmed before the failure: say which, so a retry can skip them.
            extra["accepted_ids"] = exc.accepted
        if exc.uncertain:
            extra["uncertain_ids"] = exc.uncertain
        response = problem(
            503,
            "Broker unavailable",
            "the message broker did not confirm in time. Ids in accepted_ids were accepted; ids in"
            " uncertain_ids reached the broker unconfirmed and may still take effect; nothing else"
            f" was sent. Retry with the same {idempotency.HEADER} header to make the retry the same"
            " signups.",
            kind="broker-unavailable",
            **extra,
        )
        response.headers["Retry-After"] = str(web_config.retry_after_seconds)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException) -> Any:
        if wants_problem():
            response = problem(
                exc.code or 500,
                exc.name,
                exc.description or exc.name,
                kind=exc.name.lower().replace(" ", "-"),
            )
            if exc.code == 405 and exc.valid_methods:  # type: ignore[attr-defined]
                response.headers["Allow"] = ", ".join(exc.valid_methods)  # type: ignore[attr-defined]
        else:
            html = render_template("error.html", code=exc.code, title=exc.name, detail=exc.description)
            response = Response(html, status=exc.code or 500, mimetype="text/html")
        return response

    @app.errorhandler(Exception)
    def unexpected(exc: Exception) -> Any:
        log.exception("unexpected error", extra={"fields": {"request_id": g.get("request_id")}})
        if wants_problem():
            return problem(500, "Internal error", "something went wrong on our side", kind="internal")
        return render_template(
            "error.html", code=500, title="Internal error", detail="Please try again."
        ), 500

    return app
