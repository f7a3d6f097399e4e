"""OpenAPI 3.1 description of the JSON API: what it accepts and every answer it gives."""

from __future__ import annotations

from typing import Any

from offload_core import problems
from offload_web.signups import FRUITS, NAME_MAX, NAME_PATTERN, SPECIAL_USE_DOMAINS

_problem_response = problems.openapi_response


def openapi_document(batch_limit: int) -> dict[str, Any]:
    errors = {
        "400": _problem_response("The body is not valid JSON, or the Idempotency-Key header is unusable."),
        "408": _problem_response("The body did not arrive within OFFLOAD_WEB_BODY_TIMEOUT seconds."),
        "413": _problem_response("The body is larger than the server accepts."),
        "415": _problem_response("The body is not application/json."),
        "422": _problem_response("One or more fields are invalid; each is named in `errors`."),
        "429": _problem_response(
            "Too many signups from this client, or accepted for this recipient domain; retry after"
            " the given delay (also in `retry_after`).",
            retry_after=True,
        ),
        "503": _problem_response(
            "The broker did not confirm in time; retry after the given delay, with the same"
            " Idempotency-Key. `uncertain_ids` reached the broker unconfirmed and may still take effect.",
            retry_after=True,
        ),
    }
    idempotency_key = {
        "name": "Idempotency-Key",
        "in": "header",
        "required": False,
        "description": (
            "draft-ietf-httpapi-idempotency-key-header: 1-255 printable ASCII characters, an"
            " sf-string (quoted) or bare. The signup ids are derived from it and the request's content, so a"
            " retry with the same key and body is the same signups: one email each, counted once."
            " The same key with a different body is a different signup."
        ),
        "schema": {"type": "string", "pattern": "^[!-~]{1,255}$"},
    }
    request_id = {
        "name": "X-Request-ID",
        "in": "header",
        "required": False,
        "description": (
            "Echoed back and used as the messages' correlation id. A value that is not 1-128 of"
            " A-Z a-z 0-9 . _ : - is replaced by a generated id, as is a missing one."
        ),
        "schema": {"type": "string"},
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "Offload web API",
            "version": "1.0.0",
            "description": "Signups are accepted (202) only after RabbitMQ confirmed their message.",
        },
        "paths": {
            "/api/v1/signups": {
                "post": {
                    "operationId": "createSignup",
                    "summary": "Sign up for fruit news (lane high).",
                    "parameters": [request_id, idempotency_key],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {"schema": {"$ref": "#/components/schemas/SignupRequest"}}
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Queued: the broker confirmed the message.",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/Queued"}}
                            },
                        },
                        **errors,
                    },
                }
            },
            "/api/v1/signups:batch": {
                "post": {
                    "operationId": "createSignupsBatch",
                    "summary": f"Import up to {batch_limit} signups (lane low), validated all or nothing.",
                    "description": (
                        "An import tool, not a public form: it needs the import bearer token"
                        " (OFFLOAD_WEB_BATCH_TOKEN) and is off without one. It is not rate-limited."
                    ),
                    "security": [{"importToken": []}],
                    "parameters": [request_id, idempotency_key],
                    "requestBody": {
                        "required": True,
                        "content": {
                            "application/json": {
                                "schema": {
                                    "type": "array",
                                    "minItems": 1,
                                    "maxItems": batch_limit,
                                    "uniqueItems": True,
                                    "description": "No two items may name the same address.",
                                    "items": {"$ref": "#/components/schemas/SignupRequest"},
                                }
                            }
                        },
                    },
                    "responses": {
                        "202": {
                            "description": "Every signup of the batch was confirmed.",
                            "content": {
                                "application/json": {"schema": {"$ref": "#/components/schemas/QueuedBatch"}}
                            },
                        },
                        **{code: answer for code, answer in errors.items() if code != "429"},
                        "401": _problem_response("The import bearer token is missing or wrong."),
                        "404": _problem_response(
                            "Batch imports are off on this server (no token is configured)."
                        ),
                        "422": _problem_response(
                            "A field is invalid (each is named in `errors`), the batch has too many items,"
                            " or it names one address twice."
                        ),
                        "503": _problem_response(
                            "The broker did not confirm every signup; `accepted_ids` lists those it"
                            " did, `uncertain_ids` those it may still take.",
                            retry_after=True,
                        ),
                    },
                }
            },
        },
        "components": {
            "securitySchemes": {"importToken": {"type": "http", "scheme": "bearer"}},
            "schemas": {
                "SignupRequest": {
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["name", "email", "fruit"],
                    "properties": {
                        "name": {
                            "type": "string",
                            "minLength": 1,
                            "maxLength": NAME_MAX,
                            "pattern": NAME_PATTERN,
                            "description": "Trimmed; no control characters or line breaks.",
                        },
                        "email": {
                            "type": "string",
                            "format": "email",
                            "maxLength": 254,
                            "pattern": "^(?!.*\\.(" + "|".join(SPECIAL_USE_DOMAINS) + ")$).*$",
                            "description": "Checked for syntax (no DNS lookup) and normalised; special-use"
                            " domains such as .test and .localhost are refused.",
                        },
                        "fruit": {"type": "string", "enum": list(FRUITS)},
                    },
                },
                "Queued": {
                    "type": "object",
                    "required": ["id", "status"],
                    "properties": {"id": {"type": "string"}, "status": {"const": "queued"}},
                },
                "QueuedBatch": {
                    "type": "object",
                    "required": ["ids", "status"],
                    "properties": {
                        "ids": {"type": "array", "items": {"type": "string"}},
                        "status": {"const": "queued"},
                    },
                },
                "Problem": problems.SCHEMA,
            },
        },
    }
