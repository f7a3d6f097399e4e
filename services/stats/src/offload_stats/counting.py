"""What each event adds to the counts: pure functions, shared by both stores."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from offload_core.envelope import Envelope

# Time series kept per minute, by event type.
SERIES_BY_TYPE = {
    "http.request": "requests",
    "signup.created": "signups",
    "mail.sent": "mails_sent",
    "mail.failed": "mails_failed",
    "mail.suppressed": "mails_suppressed",
}
SERIES = tuple(SERIES_BY_TYPE.values())
UNKNOWN_AGENT = "(none)"


@dataclass(frozen=True)
class Increments:
    event_id: str
    counters: tuple[tuple[str, str], ...]  # (family, key), each +1
    series: str
    minute: int  # epoch minute of occurred_at: buckets are exact whatever the lag


def epoch_minute(occurred_at: str) -> int:
    return int(datetime.fromisoformat(occurred_at.replace("Z", "+00:00")).timestamp() // 60)


def _request_counters(data: dict) -> tuple[tuple[str, str], ...]:
    return (
        ("requests", "total"),
        ("user_agent", data["user_agent"] or UNKNOWN_AGENT),
        ("path", data["path"]),
        ("status_class", f"{data['status'] // 100}xx"),
    )


def increments(envelope: Envelope) -> list[Increments]:
    """What one message adds: one Increments per event it carries, each with the id it is
    deduplicated on (a request batch carries many)."""
    data = envelope.data
    if envelope.type == "http.request.batch":
        return [
            Increments(item["id"], _request_counters(item), "requests", epoch_minute(item["occurred_at"]))
            for item in data["requests"]
        ]
    if envelope.type == "http.request":
        counters = _request_counters(data)
    elif envelope.type == "signup.created":
        counters = (("signups", "total"), ("fruit", data["fruit"]), ("lane", data["lane"]))
    elif envelope.type == "mail.sent":
        counters = (("mails", "sent"),)
    elif envelope.type == "mail.failed":
        counters = (("mails", "failed"),)
    elif envelope.type == "mail.suppressed":
        counters = (("mails", "suppressed"),)
    else:
        raise ValueError(f"stats does not count {envelope.type}")
    minute = epoch_minute(envelope.occurred_at)
    return [Increments(envelope.id, counters, SERIES_BY_TYPE[envelope.type], minute)]
