"""The HTML side: the signup form, its answer, the thank-you page."""

from __future__ import annotations

import logging
from typing import Any

from flask import Blueprint, g, redirect, render_template, request

from offload_core.ids import random_uuid
from offload_web import idempotency
from offload_web.config import web_config
from offload_web.publishing import BrokerUnavailable, signups
from offload_web.signups import FRUITS, NAME_MAX, validate_signup
from offload_web.throttle import limit_signups

log = logging.getLogger("offload.web")

FORM_FIELD_LIMIT = 4096

pages = Blueprint("pages", __name__)


def render_form(values: dict[str, str], errors: dict[str, str], status: int, key: str | None = None) -> Any:
    # A token per rendered form: submitting it twice (a retry after a 503, a double click)
    # is one signup.
    html = render_template(
        "form.html",
        fruits=FRUITS,
        values=values,
        errors=errors,
        name_max=NAME_MAX,
        idempotency_key=key or random_uuid().hex,
    )
    return html, status


@pages.get("/")
def form() -> Any:
    return render_form({}, {}, 200)


@pages.post("/signup")
@limit_signups
def submit_form() -> Any:
    values = {f: request.form.get(f, "")[:FORM_FIELD_LIMIT] for f in ("name", "email", "fruit")}
    key = idempotency.parse_key(request.form.get(idempotency.FORM_FIELD))
    if isinstance(key, idempotency.KeyProblem):
        key = None  # a mangled token only loses the retry protection, not the signup
    signup, errors = validate_signup(values)
    if signup is None:
        return render_form(values, errors, 400, key)
    try:
        signups().publish([signup], "high", key)
    except BrokerUnavailable:
        log.warning("signup refused: broker unavailable", extra={"fields": {"request_id": g.request_id}})
        retry_after = web_config().retry_after_seconds
        html = render_template("unavailable.html", retry_after=retry_after, values=values, key=key)
        return html, 503, {"Retry-After": str(retry_after)}
    return redirect("/thanks", code=303)


@pages.get("/thanks")
def thanks() -> Any:
    return render_template("thanks.html")
