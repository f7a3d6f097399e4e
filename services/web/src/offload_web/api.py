"""The JSON API: one signup, a batch of them, and the OpenAPI document that describes both."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint, Response, jsonify, request

from offload_web import idempotency
from offload_web.config import web_config
from offload_web.errors import invalid_fields, problem
from offload_web.openapi import openapi_document
from offload_web.publishing import signups
from offload_web.signups import repeated_addresses, validate_signup
from offload_web.throttle import limit_signups

api = Blueprint("api", __name__)


def json_body() -> tuple[Any, Response | None]:
    if request.mimetype != "application/json":
        return None, problem(
            415, "Unsupported media type", "send the body as application/json", kind="unsupported-media-type"
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
        detail = f"the {idempotency.HEADER} header {key.detail}"
        return None, problem(400, "Invalid Idempotency-Key", detail, kind="invalid-idempotency-key")
    return key, None


def signup_request() -> tuple[str | None, Any, Response | None]:
    """The Idempotency-Key and the JSON body of a signup request, or the error answer."""
    key, error = idempotency_key()
    if error is not None:
        return None, None, error
    body, error = json_body()
    return key, body, error


def import_refusal() -> Response | None:
    """None when the request carries the import token; else the answer: 404 while imports are
    off (no token configured), 401 without the right bearer token."""
    token = web_config().batch_token
    if token is None:
        detail = "batch imports are off on this server (the operator sets OFFLOAD_WEB_BATCH_TOKEN)"
        return problem(404, "Not Found", detail, kind="not-found")
    scheme, _, given = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() == "bearer" and hmac.compare_digest(given.strip().encode(), token.encode()):
        return None
    response = problem(401, "Unauthorized", "batch imports need the import bearer token", kind="unauthorized")
    response.headers["WWW-Authenticate"] = 'Bearer realm="offload-import"'
    return response


@api.post("/api/v1/signups")
@limit_signups
def create_signup() -> Any:
    key, body, error = signup_request()
    if error is not None:
        return error
    signup, errors = validate_signup(body)
    if signup is None:
        return invalid_fields(errors)
    [signup_id] = signups().publish([signup], "high", key)
    return jsonify({"id": signup_id, "status": "queued"}), 202


@api.post("/api/v1/signups:batch")
def create_signups_batch() -> Any:
    refusal = import_refusal()
    if refusal is not None:
        return refusal
    key, body, error = signup_request()
    if error is not None:
        return error
    if not isinstance(body, list) or not body:
        return invalid_fields({"(body)": "must be a non-empty array of signups"})
    limit = web_config().batch_limit
    if len(body) > limit:
        detail = f"a batch holds at most {limit} signups, this one has {len(body)}"
        return problem(422, "Batch too large", detail, kind="batch-too-large", limit=limit)
    batch, errors = [], {}
    for index, raw in enumerate(body):
        signup, item_errors = validate_signup(raw)
        batch.append(signup)
        errors.update({f"[{index}].{name}": reason for name, reason in item_errors.items()})
    if errors:
        return invalid_fields(errors)  # all or nothing: one bad item rejects the batch
    valid = [s for s in batch if s is not None]
    # One welcome per address: a batch naming one twice is a mistake in the import.
    repeated = repeated_addresses(valid)
    if repeated:
        return invalid_fields(repeated)
    ids = signups().publish(valid, "low", key)
    return jsonify({"ids": ids, "status": "queued"}), 202


@api.get("/openapi.json")
def openapi() -> Any:
    return jsonify(openapi_document(web_config().batch_limit))
