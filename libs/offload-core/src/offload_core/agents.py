"""User agents as a bounded set of families: the web reports a family, stats counts it.

A User-Agent header is whatever the client sends; counting it raw gives a stranger one
stored key per request. Families (rather than a top-N with an "other" bucket) because a
family is decided by the request alone: no state, the same answer in every web worker,
and a count that cannot be pushed out of the top by a flood of made-up agents.
"""

from __future__ import annotations

import re

NONE = "(none)"
OTHER = "other"
# First match wins: Edge and Opera carry "Chrome/", Chrome carries "Safari/".
_RULES: tuple[tuple[str, re.Pattern[str]], ...] = tuple(
    (family, re.compile(pattern, re.IGNORECASE))
    for family, pattern in (
        ("bot", r"bot\b|crawl|spider|slurp|monitor"),
        ("curl", r"^curl/"),
        ("wget", r"^wget/"),
        ("python", r"^python-|^aiohttp/|^httpx/"),
        ("go", r"^go-http-client/"),
        ("edge", r"\bedg(e|a|ios)?/"),
        ("opera", r"\bopr/|^opera"),
        ("firefox", r"\bfirefox/|\bfxios/"),
        ("chrome", r"\bchrome/|\bcrios/|\bchromium/"),
        ("safari", r"\bsafari/"),
    )
)
FAMILIES: frozenset[str] = frozenset({family for family, _ in _RULES} | {NONE, OTHER})
# Enough of the header to find any family's marker; the rest is never looked at.
_LOOKED_AT = 512


def agent_family(user_agent: str) -> str:
    """The family of a User-Agent header: one of FAMILIES."""
    text = user_agent.strip()[:_LOOKED_AT]
    if not text:
        return NONE
    for family, pattern in _RULES:
        if pattern.search(text):
            return family
    return OTHER


def bounded_family(reported: str) -> str:
    """What a consumer counts for a reported family: anything unknown is `other`."""
    return reported if reported in FAMILIES else OTHER
