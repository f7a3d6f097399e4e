"""What each event adds to the counts: pure functions, shared by both stores."""

from __future__ import annotations

import collections
from dataclasses import dataclass
from datetime import datetime

from offload_core.agents import bounded_family
from offload_core.envelope import Envelope
from offload_stats import welcome_delay

# Time series kept per minute, by event type.
SERIES_BY_TYPE = {
    "http.request": "requests",
    "signup.accepted": "signups",
    "signup.created": "signups",
    "mail.sent": "mails_sent",
    "mail.failed": "mails_failed",
    "mail.suppressed": "mails_suppressed",
}
SERIES = tuple(SERIES_BY_TYPE.values())


@dataclass(frozen=True)
class Increments:
    """What one message adds, applied together with its id's dedupe mark."""

    event_id: str
    counters: tuple[tuple[str, str, int], ...]  # (family, key, amount)
    # (series, epoch minute of occurred_at, amount): buckets are exact whatever the lag
    series: tuple[tuple[str, int, int], ...]


def epoch_minute(occurred_at: str) -> int:
    return int(datetime.fromisoformat(occurred_at.replace("Z", "+00:00")).timestamp() // 60)


def _request_counters(data: dict) -> tuple[tuple[str, str], ...]:
    # The web reports the matched route and the agent's family (bounded sets); an agent
    # outside the families, from anything else that publishes, counts as "other".
    return (
        ("requests", "total"),
        ("user_agent", bounded_family(data["user_agent"])),
        ("path", data["path"]),
        ("status_class", f"{data['status'] // 100}xx"),
    )


def _summed(pairs: collections.Counter) -> tuple:
    return tuple((*key, amount) for key, amount in sorted(pairs.items()))


def dedupe_id(envelope: Envelope) -> str:
    """The id a message is counted once under. A signup counts under its signup id whichever
    fact brings it: `signup.accepted` now, `signup.created` from a web of the version before
    (stats was bound to it then; those left in the queue at an upgrade are still counted)."""
    if envelope.type == "signup.accepted":
        return str(envelope.data["signup_id"])
    return envelope.id


def increments(envelope: Envelope) -> Increments:
    """What one message adds, deduplicated on the message's id: a request batch is applied
    whole with its mark, so its id stands for every request in it."""
    data = envelope.data
    if envelope.type == "http.request.batch":
        counters: collections.Counter[tuple[str, str]] = collections.Counter()
        series: collections.Counter[tuple[str, int]] = collections.Counter()
        for item in data["requests"]:
            counters.update(_request_counters(item))
            series["requests", epoch_minute(item["occurred_at"])] += 1
        return Increments(envelope.id, _summed(counters), _summed(series))
    if envelope.type == "http.request":
        counters_of_one = _request_counters(data)
    elif envelope.type in ("signup.accepted", "signup.created"):
        counters_of_one = (("signups", "total"), ("fruit", data["fruit"]), ("lane", data["lane"]))
    elif envelope.type == "mail.sent":
        counters_of_one = (("mails", "sent"),)
    elif envelope.type == "mail.failed":
        counters_of_one = (("mails", "failed"),)
    elif envelope.type == "mail.suppressed":
        counters_of_one = (("mails", "suppressed"),)
    else:
        raise ValueError(f"stats does not count {envelope.type}")
    minute = epoch_minute(envelope.occurred_at)
    points: tuple[tuple[str, int, int], ...] = ((SERIES_BY_TYPE[envelope.type], minute, 1),)
    if envelope.type == "mail.sent" and "accepted_at" in data:  # version 2 on
        delay = welcome_delay.delay_seconds(data["accepted_at"], envelope.occurred_at)
        points += ((welcome_delay.series_name(welcome_delay.bucket_of(delay)), minute, 1),)
    return Increments(
        dedupe_id(envelope),
        tuple((family, key, 1) for family, key in counters_of_one),
        points,
    )
