"""The mailer as a real process: real broker, real SMTP server (aiosmtpd), SQLite or real Redis."""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import time

import pytest
import redis

from offload_core.headers import PARK_REASON_HEADER
from offload_testkit import sent_window
from offload_testkit.amqp import ready_count, take, wait_for
from offload_testkit.messages import publish_all, signup


def events(amqp_url: str, event_type: str, expect: int) -> list[dict]:
    got = [g.json() for g in take(amqp_url, "stats.activity", expect=expect, timeout=15)]
    return [e for e in got if e["type"] == event_type]


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_one_email_per_signup_with_both_parts_and_a_mail_sent_event(
    store, mailers, redis_mailers, stack_publisher, smtp_sink, amqp_url
):
    (redis_mailers if store == "redis" else mailers).start()
    sent = [signup(name=f"Person {i}", lane=("high", "low")[i % 2]) for i in range(6)]
    for envelope in sent:
        stack_publisher.publish(envelope, lane=envelope.data["lane"])
    wait_for(lambda: smtp_sink.count() == 6, timeout=20, what="six emails")
    by_id = smtp_sink.by_header("Message-ID")
    assert set(by_id) == {f"<signup-{e.id}@offload.localhost>" for e in sent}
    message = by_id[f"<signup-{sent[0].id}@offload.localhost>"][0]
    assert message["To"] == f"Person 0 <{sent[0].data['email']}>"
    assert message.get_body(("plain",)) is not None and message.get_body(("html",)) is not None
    mail_sent = events(amqp_url, "mail.sent", expect=6)
    assert sorted(e["id"] for e in mail_sent) == sorted(f"mail.sent-{e.id}" for e in sent)
    # Version 2: each carries its signup's acceptance time, for stats' signup-to-mail delay.
    accepted = {f"mail.sent-{e.id}": e.occurred_at for e in sent}
    assert {e["version"] for e in mail_sent} == {2}
    assert {e["id"]: e["data"]["accepted_at"] for e in mail_sent} == accepted


def test_4xx_then_ok_is_delivered_once_after_the_delay(mailers, stack_publisher, smtp_sink, amqp_url):
    mailers.start()
    smtp_sink.replies.append("451 4.3.0 try again later")
    envelope = signup()
    started = time.monotonic()
    stack_publisher.publish(envelope)
    wait_for(lambda: smtp_sink.count() == 1, timeout=20, what="the email")
    assert time.monotonic() - started >= 0.2  # the first delay tier
    time.sleep(0.5)
    assert smtp_sink.count() == 1
    [sent] = events(amqp_url, "mail.sent", expect=1)
    assert sent["data"]["attempt"] == 2


def test_5xx_parks_the_signup_and_announces_mail_failed(mailers, stack_publisher, smtp_sink, amqp_url):
    mailer = mailers.start()
    envelope = signup()
    address = envelope.data["email"]
    # Relays quote the recipient in their refusals; the address must not travel on with it.
    smtp_sink.replies.append(f"550 5.1.1 <{address}>: no such user")
    stack_publisher.publish(envelope)
    [parked] = take(amqp_url, "mailer.signups.high.parked", expect=1, timeout=15)
    assert parked.properties.message_id == envelope.id
    reason = parked.headers[PARK_REASON_HEADER]
    assert "550" in reason and "<address>" in reason and address not in reason
    [failed] = events(amqp_url, "mail.failed", expect=1)
    assert failed["id"] == f"mail.failed-{envelope.id}" and "550" in failed["data"]["reason"]
    assert address not in failed["data"]["reason"]
    assert smtp_sink.count() == 0
    assert "no such user" in mailer.log_path.read_text() and address not in mailer.log_path.read_text()


def test_smtp_server_down_for_a_while_then_delivered(mailers, stack_publisher, smtp_sink):
    smtp_sink.stop()
    mailers.start(OFFLOAD_MAX_ATTEMPTS="20")
    envelope = signup()
    stack_publisher.publish(envelope)
    time.sleep(2.5)  # several retries through the delay tiers while nothing listens
    smtp_sink.start()
    wait_for(lambda: smtp_sink.count() == 1, timeout=20, what="the email after the server came back")
    assert list(smtp_sink.by_header("Message-ID")) == [f"<signup-{envelope.id}@offload.localhost>"]


def test_replay_from_the_parking_queue_delivers(mailers, stack_publisher, smtp_sink, amqp_url):
    mailers.start()
    smtp_sink.replies.append("550 5.2.2 mailbox full")
    envelope = signup()
    stack_publisher.publish(envelope)
    wait_for(lambda: ready_count(amqp_url, "mailer.signups.high.parked") == 1, timeout=15, what="parked")
    cli = [sys.executable, "-m", "offload_core.deadletters"]
    env = os.environ | {"OFFLOAD_AMQP_URL": amqp_url}
    listed = subprocess.run([*cli, "list", "mailer.signups.high"], env=env, capture_output=True, text=True)
    assert envelope.id in listed.stdout and "mailbox full" in listed.stdout
    replayed = subprocess.run(
        [*cli, "replay", "mailer.signups.high"], env=env, capture_output=True, text=True
    )
    assert replayed.returncode == 0, replayed.stderr
    wait_for(lambda: smtp_sink.count() == 1, timeout=15, what="the replayed email")
    assert ready_count(amqp_url, "mailer.signups.high.parked") == 0


def test_kill_9_during_sends_duplicates_only_mails_inside_the_window(
    redis_mailers, stack_publisher, smtp_sink, amqp_url, redis_url
):
    """The one duplicate window: the SMTP server has the mail, the sent-store does not yet,
    and the mailer dies. Each kill here freezes the mailer first and lists the mails in that
    window (sent_window); every duplicate must be one of them, resent once. The negative
    control (the store never consulted) is in tests/chaos/test_scenarios.py: it needs the mailer's
    broker link stalled, so that a kill lands on sent mails for certain."""
    smtp_sink.delay = 0.02
    sent = [signup(name=f"P{i}", email=f"p{i}@example.com") for i in range(80)]
    futures = [stack_publisher.publish_async(e) for e in sent]
    for future in futures:
        future.result(10)
    store = redis.Redis.from_url(redis_url)
    window: set[str] = set()
    for _ in range(3):
        process = redis_mailers.start(OFFLOAD_WORKER_THREADS="4", OFFLOAD_PREFETCH="8")
        target = smtp_sink.count() + 15
        wait_for(lambda t=target: smtp_sink.count() >= t, timeout=30, what="sending under way")
        pid = process.process.pid
        os.kill(pid, signal.SIGSTOP)
        window |= sent_window.in_window(pid, smtp_sink, store)
        process.kill()
    redis_mailers.start()
    addresses = {e.data["email"] for e in sent}
    wait_for(
        lambda: addresses <= set(smtp_sink.copies_by_recipient()), timeout=60, what="every signup mailed"
    )
    wait_for(lambda: ready_count(amqp_url, "mailer.signups.high") == 0, timeout=30, what="queue drained")
    copies = smtp_sink.copies_by_recipient()
    duplicated = {a: n for a, n in copies.items() if n > 1}
    print(f"kill -9 x3: {len(sent)} signups, {sum(copies.values())} emails, window {sorted(window)}")
    assert set(copies) == addresses
    assert set(duplicated) <= window and all(n == 2 for n in duplicated.values()), (duplicated, window)
    assert ready_count(amqp_url, "mailer.signups.high.parked") == 0


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_two_copies_of_a_signup_in_flight_at_once_send_one_email(
    store, mailers, redis_mailers, stack_publisher, smtp_sink, amqp_url
):
    """A publisher republishes what the broker had not confirmed when its connection dropped,
    so one signup can be in the queue twice; copies handled at the same moment by different
    workers must still give one email (the store's claim), not one each."""
    processes = mailers if store == "sqlite" else redis_mailers
    smtp_sink.delay = 0.3  # every send overlaps with its twin's
    sent = [signup(name=f"Twin {i}") for i in range(12)]
    for envelope in sent:
        stack_publisher.publish(envelope)
        stack_publisher.publish(envelope)
    for _ in range(2):
        processes.start(OFFLOAD_WORKER_THREADS="4", OFFLOAD_PREFETCH="4")
    expected = {f"<signup-{e.id}@offload.localhost>" for e in sent}
    wait_for(
        lambda: expected <= set(smtp_sink.by_header("Message-ID")), timeout=60, what="every signup mailed"
    )
    logs = lambda: "".join(p.log_path.read_text() for p in processes.running)  # noqa: E731
    # Every twin that lost the claim comes back after a delay tier and is skipped as sent.
    wait_for(lambda: logs().count("already sent, skipping") >= len(sent), timeout=30, what="twins skipped")
    assert "another worker is sending this signup" in logs()  # the race really happened
    copies = smtp_sink.by_header("Message-ID")
    assert {k: len(v) for k, v in copies.items() if len(v) > 1} == {}
    assert len(copies) == len(sent)


def test_status_endpoints_and_sigterm_exit(mailers):
    import requests

    process = mailers.start()
    assert requests.get(process.status_url + "/healthz", timeout=5).ok
    assert requests.get(process.status_url + "/readyz", timeout=5).ok
    assert "offload_messages_in_flight" in requests.get(process.status_url + "/metrics", timeout=5).text
    assert process.terminate() == 0


@pytest.mark.parametrize("store", ["sqlite", "redis"])
@pytest.mark.parametrize("welcome_once", [True, False], ids=["welcome-once", "control-every-signup"])
def test_forty_signups_for_one_address_send_one_welcome(
    store, welcome_once, mailers, redis_mailers, stack_publisher, smtp_sink, amqp_url
):
    """Forty signups for one mailbox, spelt with the domain in different cases, handled by two
    processes of four threads at once: one welcome, 39 settled as suppressed (an event each,
    a log line with the signup id and never the address). The control switches the address
    claim off (OFFLOAD_MAILER_WELCOME_ONCE_DAYS=0) and the same check sees forty mails."""
    processes = mailers if store == "sqlite" else redis_mailers
    smtp_sink.delay = 0.05  # sends overlap: later signups arrive while the first is being welcomed
    spellings = ["grace@example.org", "grace@EXAMPLE.org", "grace@Example.Org"]
    sent = [signup(name=f"Grace {i}", email=spellings[i % 3]) for i in range(40)]
    env = {"OFFLOAD_WORKER_THREADS": "4", "OFFLOAD_PREFETCH": "8"}
    if not welcome_once:
        env["OFFLOAD_MAILER_WELCOME_ONCE_DAYS"] = "0"
    for _ in range(2):
        processes.start(**env)
    publish_all(stack_publisher, sent)
    # stats.activity holds one outcome event per signup (stats takes signup.accepted, not these).
    outcomes = [g.json() for g in take(amqp_url, "stats.activity", expect=40, timeout=30)]
    by_type = collections.Counter(e["type"] for e in outcomes)
    mails = sum(smtp_sink.copies_by_recipient().values())
    if not welcome_once:
        assert mails == 40 and by_type["mail.sent"] == 40, (mails, by_type)
        return
    assert mails == 1, f"{mails} welcome emails to one address"
    assert by_type == {"mail.sent": 1, "mail.suppressed": 39}, by_type
    [welcomed] = [e["data"]["signup_id"] for e in outcomes if e["type"] == "mail.sent"]
    suppressed = [e["data"] for e in outcomes if e["type"] == "mail.suppressed"]
    assert {d["welcomed_by"] for d in suppressed} == {welcomed}
    logs = "".join(p.log_path.read_text() for p in processes.running)
    assert all(d["signup_id"] in logs for d in suppressed)
    assert "grace@" not in logs.lower()


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_an_address_whose_welcome_failed_for_good_can_be_welcomed_by_a_later_signup(
    store, mailers, redis_mailers, stack_publisher, smtp_sink, amqp_url
):
    (mailers if store == "sqlite" else redis_mailers).start()
    smtp_sink.replies.append("550 5.2.2 mailbox full")
    first, second = signup(email="lin@example.net"), signup(email="lin@example.net")
    stack_publisher.publish(first)
    take(amqp_url, "mailer.signups.high.parked", expect=1, timeout=15)
    stack_publisher.publish(second)
    wait_for(lambda: smtp_sink.count() == 1, timeout=15, what="the later signup's welcome")
    assert list(smtp_sink.by_header("Message-ID")) == [f"<signup-{second.id}@offload.localhost>"]
