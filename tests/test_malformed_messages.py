"""Malformed messages published straight to each work queue, past the web's validation:
each is parked with a reason in that queue's parking queue, and the runner keeps going (a
valid message sent after them is handled). Real mailer and stats processes, real broker,
real SMTP server."""

from __future__ import annotations

import json

import pika
import pytest

from offload_core.envelope import Envelope
from offload_core.headers import PARK_REASON_HEADER
from offload_core.topology import declare, stack_topology
from offload_testkit.amqp import take, wait_for
from offload_testkit.messages import signup
from offload_testkit.stack import start_mailer, start_stats_runner


def page_view() -> Envelope:
    data = {
        "method": "GET",
        "path": "/",
        "status": 200,
        "duration_ms": 1.0,
        "user_agent": "curl/8",
        "headers": {},
    }
    return Envelope("http.request", data)


def without(envelope: Envelope, field: str) -> bytes:
    body = json.loads(envelope.to_bytes())
    del body[field]
    return json.dumps(body).encode()


# (case, body, AMQP properties, words the park reason must contain)
COMMON = [
    ("not JSON", b"\x00\xff{ not json", {}, "not JSON"),
    ("JSON but not an object", b"[1, 2, 3]", {}, "invalid message"),
    ("no id", without(signup(), "id"), {}, "invalid message"),
    ("no type", without(signup(), "type"), {}, "invalid message"),
    ("unknown type", json.dumps({**json.loads(signup().to_bytes()), "type": "x.y"}).encode(), {}, "invalid"),
    ("data breaks its schema", signup().to_bytes().replace(b"kiwi", b"durian"), {}, "fruit"),
    ("type property differs", signup().to_bytes(), {"type": "mail.sent"}, "differs"),
    ("wrong content type", signup().to_bytes(), {"content_type": "text/xml"}, "content_type"),
    ("huge body", b'{"pad": "' + b"x" * 400_000 + b'"}', {}, "byte limit"),
]
MAILER_ONLY = [("an event the mailer does not handle", page_view().to_bytes(), {}, "not http.request")]


@pytest.fixture
def stack(core_config, smtp_sink, redis_url, tmp_path):
    declare(core_config.amqp_url, stack_topology())
    env = {"OFFLOAD_AMQP_URL": core_config.amqp_url, "OFFLOAD_LOG_FORMAT": "text"}
    mailer = start_mailer(
        env
        | {
            "OFFLOAD_MAILER_BACKEND": "smtp",
            "OFFLOAD_SMTP_PORT": str(smtp_sink.port),
            "OFFLOAD_MAILER_STORE_URL": redis_url,
        },
        tmp_path,
    )
    stats = start_stats_runner(env | {"OFFLOAD_STATS_STORE_URL": f"sqlite:///{tmp_path}/stats.db"}, tmp_path)
    yield tmp_path
    for service in (mailer, stats):
        assert service.terminate() == 0


def publish(url: str, queue: str, body: bytes, properties: dict) -> None:
    connection = pika.BlockingConnection(pika.URLParameters(url))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("", queue, body, pika.BasicProperties(delivery_mode=2, **properties))
    connection.close()


@pytest.mark.parametrize(
    ("queue", "table", "valid"),
    [
        ("mailer.signups.high", COMMON + MAILER_ONLY, signup),
        ("stats.activity", COMMON, signup),
        ("stats.requests", COMMON, page_view),
    ],
)
def test_malformed_messages_are_parked_with_a_reason_and_the_runner_goes_on(
    stack, core_config, smtp_sink, queue, table, valid
):
    for case, body, properties, _words in table:  # the correlation id names the case
        publish(core_config.amqp_url, queue, body, {"correlation_id": case, **properties})
    good = valid()
    publish(core_config.amqp_url, queue, good.to_bytes(), {})
    parked = take(core_config.amqp_url, f"{queue}.parked", expect=len(table), timeout=30)
    reasons = {p.properties.correlation_id: p.headers[PARK_REASON_HEADER] for p in parked}
    assert set(reasons) == {case for case, *_ in table}  # each parked once, none lost
    for case, _body, _properties, words in table:
        assert words in reasons[case], (case, reasons[case])
    if queue.startswith("mailer"):
        wait_for(
            lambda: f"<signup-{good.id}@offload.localhost>" in smtp_sink.by_header("Message-ID"), timeout=20
        )
    else:
        import sqlite3

        def counted() -> bool:
            with sqlite3.connect(stack / "stats.db") as db:
                return (
                    db.execute("SELECT 1 FROM processed WHERE event_id = ?", (good.id,)).fetchone()
                    is not None
                )

        wait_for(counted, timeout=20, what="the valid event counted")
