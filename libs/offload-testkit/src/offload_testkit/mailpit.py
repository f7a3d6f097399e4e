"""Reading Mailpit's HTTP API (or the mail sink that serves the same subset)."""

from __future__ import annotations

import collections

import requests


def mailpit_copies(mailpit: str) -> collections.Counter[str]:
    """How many messages mailpit holds per recipient address (every page of its list)."""
    copies: collections.Counter[str] = collections.Counter()
    start = 0
    while True:
        page = requests.get(
            f"{mailpit}/api/v1/messages", params={"start": start, "limit": 500}, timeout=10
        ).json()
        for message in page["messages"]:
            copies.update(to["Address"].lower() for to in message["To"])
        start += len(page["messages"])
        if not page["messages"] or start >= page["total"]:
            return copies
