"""Event builders and a runner launcher shared by the stats tests."""

from __future__ import annotations

from offload_core.envelope import Envelope
from offload_testkit.processes import ServiceProcess
from offload_testkit.stack import start_stats_runner


def request_event(path: str = "/", agent: str = "curl/8", status: int = 200) -> Envelope:
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


def signup_event(fruit: str = "kiwi", lane: str = "high") -> Envelope:
    return Envelope("signup.created", {"name": "A", "email": "a@example.com", "fruit": fruit, "lane": lane})


def start_runner(core_config, store_url: str, tmp_path, name: str = "stats", **env: str) -> ServiceProcess:
    environment = {
        "OFFLOAD_AMQP_URL": core_config.amqp_url,
        "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in core_config.delay_tiers),
        "OFFLOAD_RECONNECT_MAX_DELAY": "1",
        "OFFLOAD_STATS_STORE_URL": store_url,
        "OFFLOAD_LOG_FORMAT": "text",
        **env,
    }
    return start_stats_runner(environment, tmp_path, name=name).process


def publish_all(publisher, envelopes) -> None:
    futures = [publisher.publish_async(e, lane=e.data.get("lane")) for e in envelopes]
    for future in futures:
        future.result(15)
