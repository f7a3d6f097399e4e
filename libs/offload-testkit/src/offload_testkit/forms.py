"""The signup form as a browser uses it: a session that fetched the page, and its hidden fields."""

from __future__ import annotations

import re

import requests

_HIDDEN = re.compile(r'<input type="hidden" name="(csrf_token|idempotency_key)" value="([^"]+)">')


def hidden_fields(page: str) -> dict[str, str]:
    """The CSRF token and idempotency token a rendered form (or 503 page) carries."""
    return dict(_HIDDEN.findall(page))


def form_session(base_url: str) -> tuple[requests.Session, dict[str, str]]:
    """A session holding the form's cookie, and the hidden fields of the form it was given."""
    session = requests.Session()
    page = session.get(base_url + "/", timeout=10)
    page.raise_for_status()
    return session, hidden_fields(page.text)
