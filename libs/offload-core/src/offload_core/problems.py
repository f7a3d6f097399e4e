"""RFC 9457 problem details, once for every HTTP API of the stack: the body, its media
type, and the OpenAPI schema and response objects that describe it. (Building the HTTP
response stays with each Flask app: the core does not depend on Flask.)"""

from __future__ import annotations

from typing import Any

MEDIA_TYPE = "application/problem+json"
TYPE_BASE = "https://offload.dev/problems/"

# components/schemas/Problem in each OpenAPI document.
SCHEMA: dict[str, Any] = {
    "type": "object",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["name", "reason"],
                "properties": {"name": {"type": "string"}, "reason": {"type": "string"}},
            },
        },
        "accepted_ids": {"type": "array", "items": {"type": "string"}},
        "uncertain_ids": {"type": "array", "items": {"type": "string"}},
        "limit": {"type": "integer"},
    },
}
SCHEMA_REF = {"$ref": "#/components/schemas/Problem"}


def body(status: int, title: str, detail: str, *, kind: str, **extra: Any) -> dict[str, Any]:
    """The problem document; `kind` names it under TYPE_BASE."""
    return {"type": TYPE_BASE + kind, "title": title, "status": status, "detail": detail, **extra}


def kind_of(title: str) -> str:
    """The `kind` a title gives when there is no better name (HTTP errors: "Not Found")."""
    return title.lower().replace(" ", "-")


def openapi_response(description: str, *, retry_after: bool = False) -> dict[str, Any]:
    """An OpenAPI response object for a problem answer."""
    response: dict[str, Any] = {"description": description, "content": {MEDIA_TYPE: {"schema": SCHEMA_REF}}}
    if retry_after:
        response["headers"] = {"Retry-After": {"schema": {"type": "string"}, "description": "seconds"}}
    return response
