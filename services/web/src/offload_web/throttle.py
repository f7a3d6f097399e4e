"""Rate limits on signups (flask-limiter), shared by every replica through their storage.

Two limits guard each signup, from the form or the JSON API:

- per client: every attempt counts, accepted or not (volume is the attack). The client is
  the remote address, or with `OFFLOAD_WEB_TRUSTED_PROXIES=N` the N-th address from the
  right of X-Forwarded-For (werkzeug's ProxyFix, so the right-most hop no trusted proxy
  added). An IPv6 client is its /64: one host is given a whole /64 and may use any
  address in it.
- per recipient domain: only accepted signups count, so a stranger's refused requests
  cannot lock a domain's real users out. This bounds how much mail one domain gets from
  us, which is what its postmaster judges our reputation by.

The batch import is exempt: it needs a bearer token (api.py) and its size is bounded.

Storage: `memory://` keeps counters inside each gunicorn worker, so a client gets the limit
once per worker of every replica; that is right only where one process serves. Any other
deployment points `OFFLOAD_WEB_RATE_LIMIT_STORAGE` at Redis (the chart does), keys under
`offload:web:`. If that Redis goes away, each worker falls back to memory until it is back:
a signup form stays up and keeps a (looser) limit rather than failing or going unlimited.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import time
from typing import Any

from flask import Flask, Response, render_template, request
from flask_limiter import Limiter, RequestLimit
from flask_limiter.errors import RateLimitExceeded
from werkzeug.middleware.proxy_fix import ProxyFix

from offload_core.mailboxes import ascii_domain
from offload_web.config import WebConfig, web_config
from offload_web.errors import problem, wants_problem

log = logging.getLogger("offload.web")

KEY_PREFIX = "offload:web:ratelimit"
# Longest DNS name; a longer "domain" is refused by validation and keys nothing.
DOMAIN_MAX = 253
ACCEPTED = (202, 303)


def client_key() -> str:
    """The client a request is counted against (request.remote_addr after ProxyFix)."""
    raw = request.remote_addr or "unknown"
    try:
        address = ipaddress.ip_address(raw)
    except ValueError:
        return raw[:64]
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def recipient_domain() -> str | None:
    """The lower-cased domain the signup would mail, or None when the body names none."""
    if request.mimetype == "application/json":
        body = request.get_json(silent=True)
        email = body.get("email") if isinstance(body, dict) else None
    else:
        email = request.form.get("email")
    if not isinstance(email, str) or "@" not in email:
        return None
    domain = email.rpartition("@")[2].strip()
    if not domain or len(domain) > DOMAIN_MAX:
        return None
    try:
        return ascii_domain(domain)
    except UnicodeError:
        return None  # not a name validation will accept: nothing is mailed, nothing to count


def _domain_key() -> str:
    return recipient_domain() or ""


def _no_domain_limit() -> bool:
    return web_config().domain_limit is None or recipient_domain() is None


def _accepted(response: Response) -> bool:
    return response.status_code in ACCEPTED


def retry_after_seconds(limit: RequestLimit, now: float | None = None) -> int:
    """Whole seconds until the window that refused the request lets one more in (at least 1)."""
    reset = limit.window.reset_time  # exact; RequestLimit.reset_at adds a second on top
    return max(1, math.ceil(reset - (time.time() if now is None else now)))


def _refused(limit: RequestLimit, scope: str) -> Response:
    retry_after = retry_after_seconds(limit)
    log.warning(
        "signup rate-limited",
        extra={"fields": {"limit": str(limit.limit), "per": scope, "retry_after": retry_after}},
    )
    if wants_problem():
        detail = f"too many signups from this {scope}: at most {limit.limit}; try again in {retry_after} s"
        response = problem(429, "Too many requests", detail, kind="rate-limited", retry_after=retry_after)
    else:
        html = render_template("throttled.html", retry_after=retry_after, per=scope)
        response = Response(html, status=429, mimetype="text/html")
    response.headers["Retry-After"] = str(retry_after)
    return response


def _rate_limited(exc: RateLimitExceeded) -> Any:
    return exc.get_response()  # the answer _refused built


limiter = Limiter(
    key_func=client_key,
    key_prefix=KEY_PREFIX,
    strategy="sliding-window-counter",
    headers_enabled=False,  # Retry-After comes with the 429; no per-request quota headers
    in_memory_fallback_enabled=True,
    swallow_errors=True,
)

# The views' decorators: `limit_signups` on every public signup endpoint.
# Shared limits: the form and the API draw on one budget per client and one per domain.
per_client = limiter.shared_limit(
    lambda: web_config().client_limit or "1/second",
    "signups-per-client",
    exempt_when=lambda: web_config().client_limit is None,
    on_breach=lambda limit: _refused(limit, "client"),
)
per_domain = limiter.shared_limit(
    lambda: web_config().domain_limit or "1/second",
    "signups-per-domain",
    key_func=_domain_key,
    exempt_when=_no_domain_limit,
    deduct_when=_accepted,
    on_breach=lambda limit: _refused(limit, "recipient domain"),
)


def limit_signups(view: Any) -> Any:
    return per_client(per_domain(view))


def init_app(app: Flask, config: WebConfig) -> None:
    if config.trusted_proxies:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=config.trusted_proxies)  # type: ignore[method-assign]
    app.config["RATELIMIT_STORAGE_URI"] = config.rate_limit_storage
    if config.rate_limit_storage.startswith(("redis://", "rediss://")):
        # A slow Redis must not hold a signup: after a second the worker counts in memory.
        # The storage's own key prefix ("LIMITS" by default) comes first in every key: ours,
        # so the keys match the web's Redis user (~offload:web:*).
        app.config["RATELIMIT_STORAGE_OPTIONS"] = {
            "socket_timeout": 1,
            "socket_connect_timeout": 1,
            "key_prefix": KEY_PREFIX,
        }
    app.config["RATELIMIT_ENABLED"] = bool(config.client_limit or config.domain_limit)
    limiter.init_app(app)
    app.register_error_handler(RateLimitExceeded, _rate_limited)
