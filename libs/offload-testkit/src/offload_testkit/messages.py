"""The messages tests and benchmarks send, built one way everywhere, and a publisher to send them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Iterable, Iterator

from offload_core.config import CoreConfig
from offload_core.envelope import Envelope, derived_id
from offload_core.publisher import Publisher
from offload_core.topology import Topology


def signup(name: str = "Ada", email: str | None = None, fruit: str = "kiwi", lane: str = "high") -> Envelope:
    """A valid signup.created event, as the web publishes it; by default for an address of
    its own (the mailer welcomes an address once)."""
    if email is None:
        email = f"ada-{uuid.uuid4().hex[:12]}@example.com"
    return Envelope("signup.created", {"name": name, "email": email, "fruit": fruit, "lane": lane})


def signup_accepted(fruit: str = "kiwi", lane: str = "high", signup_id: str | None = None) -> Envelope:
    """A valid signup.accepted event, what stats counts of a signup, as the web publishes it."""
    signup_id = signup_id or str(uuid.uuid4())
    data = {"signup_id": signup_id, "fruit": fruit, "lane": lane}
    return Envelope("signup.accepted", data, id=derived_id("signup.accepted", signup_id))


def request_event(path: str = "/", agent: str = "curl/8", status: int = 200) -> Envelope:
    """One http.request report."""
    data = {
        "method": "GET",
        "path": path,
        "status": status,
        "duration_ms": 1.5,
        "user_agent": agent,
        "headers": {},
    }
    return Envelope("http.request", data)


def request_batch(*requests: Envelope) -> Envelope:
    """The web's form: many request reports, each with its own id and time, in one event."""
    items = [{"id": r.id, "occurred_at": r.occurred_at, **r.data} for r in requests]
    return Envelope("http.request.batch", {"requests": items})


def publish_all(publisher: Publisher, envelopes: Iterable[Envelope], timeout: float = 15.0) -> None:
    """Publish pipelined, each in its own lane (signups) or the default, and wait for every confirm."""
    futures = [publisher.publish_async(e, lane=e.data.get("lane")) for e in envelopes]
    for future in futures:
        future.result(timeout)


@contextlib.contextmanager
def started_publisher(config: CoreConfig, topology: Topology | None) -> Iterator[Publisher]:
    """A publisher that has connected and declared `topology`; closed on exit."""
    publisher = Publisher(config, topology).start()
    try:
        assert publisher.wait_ready(10), f"publisher not ready: {publisher.last_error}"
        yield publisher
    finally:
        publisher.close()
