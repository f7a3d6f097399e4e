"""The web's application factory: the signup form, the JSON API, operations, errors.

A signup is accepted (303 / 202) only after RabbitMQ confirmed its `signup.created`
message; if the broker cannot confirm within the timeout the answer is 503 with
Retry-After, never a hang and never an acceptance that was not confirmed.
"""

from __future__ import annotations

import logging
import secrets

from flask import Flask
from flask_wtf.csrf import CSRFProtect

from offload_core import page_headers, tracing
from offload_core import status_port as status_port_split
from offload_core.config import CoreConfig
from offload_core.publisher import Publisher
from offload_core.status_routes import status_blueprint
from offload_core.topology import stack_topology
from offload_web import analytics, bookkeeping, errors, readiness, throttle
from offload_web.api import api
from offload_web.config import WebConfig
from offload_web.ops import readiness as web_readiness
from offload_web.pages import pages
from offload_web.publishing import SignupPublisher

log = logging.getLogger("offload.web")


def create_app(
    publisher: Publisher | None = None,
    web_config: WebConfig | None = None,
    core_config: CoreConfig | None = None,
    status_port: int | None = None,
) -> Flask:
    """The web; `status_port`: gunicorn's second port, the only one that serves /metrics,
    /healthz and /readyz (None: every path on the one port, as for a test client)."""
    web_config = web_config or WebConfig.from_env()
    core_config = core_config or CoreConfig.from_env(service_name="web")
    if publisher is None:
        topology = stack_topology(core_config.delay_tiers, core_config.delivery_limit)
        publisher = Publisher(core_config, core_config.topology_to_declare(topology), name="web").start()
    if not web_config.publish_signups:
        log.warning("OFFLOAD_WEB_PUBLISH=off: signups are NOT sent to the broker (benchmark mode)")

    app = Flask(__name__)
    app.config["MAX_CONTENT_LENGTH"] = web_config.max_body_bytes
    app.config["MAX_FORM_MEMORY_SIZE"] = web_config.max_body_bytes
    # The form's CSRF token lives in a signed session cookie (Flask-WTF); the JSON API takes
    # no cookie, so a cross-site page cannot post to it with the visitor's credentials.
    app.config["SECRET_KEY"] = web_config.secret_key or secrets.token_urlsafe(48)
    app.config["SESSION_COOKIE_SAMESITE"] = "Lax"
    app.config["WTF_CSRF_TIME_LIMIT"] = 24 * 3600  # a form left open for a day still works
    app.json.sort_keys = False  # type: ignore[attr-defined]  # Flask types app.json as the provider base class
    app.extensions["offload_web_config"] = web_config
    status_port_split.install(app, status_port)  # before any other hook looks at a request
    SignupPublisher(publisher, core_config, enabled=web_config.publish_signups).init_app(app)
    bookkeeping.init_app(app, body_timeout_seconds=web_config.body_timeout_seconds)
    errors.init_app(app)
    throttle.init_app(app, web_config)
    page_headers.install(app)
    for blueprint in (pages, api, status_blueprint(web_readiness)):
        app.register_blueprint(blueprint)
    CSRFProtect(app).exempt(api)
    if web_config.analytics:
        analytics.install(app, publisher, interval=web_config.analytics_interval)
    pod = readiness.from_environment()
    if pod is not None:
        app.extensions["offload_pod_readiness"] = pod
        readiness.keep_recording(pod, lambda: publisher.ready)
    if tracing.enabled():
        from opentelemetry.instrumentation.flask import FlaskInstrumentor

        FlaskInstrumentor().instrument_app(app, excluded_urls="healthz,readyz,metrics,static")
    return app
