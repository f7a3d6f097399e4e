"""Idempotency keys for signups (IETF draft-ietf-httpapi-idempotency-key-header).

A client that got no answer, or a 503 whose message the broker may still have, retries
with the same `Idempotency-Key`. The web keeps no state between requests (RabbitMQ is its
only dependency), so the key is not looked up anywhere: the signup id is *derived* from
the key and the request's content, and a retry therefore publishes the same id. The
mailer's sent-store and the stats dedupe work on that id, so the retry is one signup, one
email and one count.

Deviation from the draft, on purpose: a key reused with a different payload is not
refused with 422 (that needs a store of past keys); it derives a different id and so is a
different signup.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass

import orjson

HEADER = "Idempotency-Key"
FORM_FIELD = "idempotency_key"
MAX_LENGTH = 255
_ESCAPED = re.compile(r'\\(["\\])')
_NAMESPACE = uuid.UUID("6f1c9a3e-2d4b-5e8f-9a7c-0b1d2e3f4a5b")


@dataclass(frozen=True)
class KeyProblem:
    detail: str


def parse_key(raw: str | None) -> str | KeyProblem | None:
    """The key as sent: 1-255 printable ASCII characters, unquoted when it is an sf-string
    (`"abc"`, as the draft spells it; most clients send the bare text). None when absent;
    KeyProblem when unusable."""
    if raw is None:
        return None
    text = raw.strip()
    if not text:
        return KeyProblem("must not be empty")
    if len(text) > MAX_LENGTH:
        return KeyProblem(f"must be at most {MAX_LENGTH} characters")
    if not all(" " < ch <= "~" for ch in text):
        return KeyProblem("must be printable ASCII without spaces")
    if len(text) >= 3 and text[0] == text[-1] == '"':
        return _ESCAPED.sub(r"\1", text[1:-1])
    return text


def signup_ids(key: str, lane: str, payloads: list[dict[str, str]]) -> list[str]:
    """One id per signup, the same for the same key, lane, position and content."""
    return [
        str(uuid.uuid5(_NAMESPACE, f"{key}\n{lane}\n{index}\n{_canonical(payload)}"))
        for index, payload in enumerate(payloads)
    ]


def _canonical(payload: dict[str, str]) -> str:
    return orjson.dumps(payload, option=orjson.OPT_SORT_KEYS).decode()
