"""Headers on every answer of the stack's Flask apps (the web and the stats API): a Content
Security Policy with no script at all and styles only from the page's own nonced <style>,
no framing (clickjacking a signup form), and no referrer sent to other sites.

The policy is a pure function of the nonce; `install` is the Flask glue both apps use.
"""

from __future__ import annotations

import secrets
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from flask import Flask, Response

NONCE_BYTES = 16


def page_headers(nonce: str) -> dict[str, str]:
    """The headers of an answer whose <style> elements carry `nonce`."""
    policy = (
        "default-src 'none'; "
        f"style-src 'nonce-{nonce}'; "
        "img-src 'self' data:; "
        "form-action 'self'; "
        "frame-ancestors 'none'; "
        "base-uri 'none'"
    )
    return {
        "Content-Security-Policy": policy,
        "X-Frame-Options": "DENY",  # frame-ancestors for browsers that predate CSP 2
        "Referrer-Policy": "no-referrer",
        "X-Content-Type-Options": "nosniff",
    }


def install(app: Flask) -> None:
    """A fresh nonce per request (`csp_nonce` in templates) and the headers on every answer."""
    from flask import g

    def nonce() -> str:
        if "csp_nonce" not in g:
            g.csp_nonce = secrets.token_urlsafe(NONCE_BYTES)
        return str(g.csp_nonce)

    def add_headers(response: Response) -> Response:
        for name, value in page_headers(nonce()).items():
            response.headers.setdefault(name, value)
        return response

    app.context_processor(lambda: {"csp_nonce": nonce})
    app.after_request(add_headers)
