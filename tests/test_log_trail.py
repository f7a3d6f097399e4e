"""One signup followed through the JSON logs: web request id → mailer outcome → the mail → stats."""

from __future__ import annotations

import json
from email import message_from_bytes
from pathlib import Path

import pytest
import requests

from offload_testkit.amqp import wait_for
from offload_testkit.stack import start_mailer, start_stats_runner, start_web

pytestmark = pytest.mark.slow

OUTCOME_FIELDS = {
    "outcome",
    "queue",
    "message_id",
    "correlation_id",
    "attempt",
    "time_on_queue_ms",
    "duration_ms",
}


def json_lines(path: Path) -> list[dict]:
    """The JSON log entries of one service (gunicorn's own lines are plain text)."""
    entries = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            entries.append(json.loads(line))
    return entries


def outcome_lines(path: Path, correlation_id: str) -> list[dict]:
    return [e for e in json_lines(path) if e.get("correlation_id") == correlation_id and "outcome" in e]


def test_a_signup_can_be_followed_from_the_request_id_to_the_mail(core_config, tmp_path):
    env = {
        "OFFLOAD_AMQP_URL": core_config.amqp_url,
        "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in core_config.delay_tiers),
    }
    outbox = tmp_path / "outbox"
    services = [
        start_web(env, tmp_path),
        start_mailer(
            env
            | {
                "OFFLOAD_MAILER_OUTBOX": str(outbox),
                "OFFLOAD_MAILER_STORE_URL": f"sqlite:///{tmp_path}/sent.db",
            },
            tmp_path,
        ),
        start_stats_runner(env | {"OFFLOAD_STATS_STORE_URL": f"sqlite:///{tmp_path}/stats.db"}, tmp_path),
    ]
    web = services[0]
    request_id = "trail-4f1c2a"
    try:
        answer = requests.post(
            web.url + "/api/v1/signups",
            json={"name": "Ada", "email": "ada@example.org", "fruit": "apple"},
            headers={"X-Request-ID": request_id},
            timeout=10,
        )
        assert answer.status_code == 202, answer.text
        assert answer.headers["X-Request-ID"] == request_id
        signup_id = answer.json()["id"]

        mailer_log, stats_log = tmp_path / "mailer.log", tmp_path / "stats.log"
        wait_for(lambda: outcome_lines(mailer_log, request_id), timeout=30, what="the mailer's outcome line")
        wait_for(
            lambda: any(e.get("type") == "mail.sent" for e in outcome_lines(stats_log, request_id)),
            timeout=30,
            what="stats' outcome line for mail.sent",
        )
    finally:
        for service in services:
            service.terminate()

    # The web: the request id names the signup it accepted.
    accepted = [e for e in json_lines(tmp_path / "web.log") if e.get("msg") == "signup accepted"]
    assert [(e["request_id"], e["signup_id"]) for e in accepted] == [(request_id, signup_id)]

    # The mailer: one acked line for the signup, carrying the request id as correlation id.
    (sent,) = outcome_lines(tmp_path / "mailer.log", request_id)
    assert sent.keys() >= OUTCOME_FIELDS
    assert sent["outcome"] == "acked"
    assert sent["message_id"] == signup_id
    assert sent["queue"] == "mailer.signups.high"
    assert sent["type"] == "signup.created"
    assert sent["attempt"] == 1
    assert sent["time_on_queue_ms"] >= 0 and sent["duration_ms"] >= 0

    # The mail: its Message-ID derives from the signup id.
    (eml,) = outbox.glob("*.eml")
    mail = message_from_bytes(eml.read_bytes())
    assert signup_id in mail["Message-ID"]
    assert mail["To"] == "Ada <ada@example.org>"

    # Stats: the signup and its mail.sent event, both under the same correlation id.
    stats_types = {e["type"] for e in outcome_lines(tmp_path / "stats.log", request_id)}
    assert {"signup.accepted", "mail.sent"} <= stats_types
