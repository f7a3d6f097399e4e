"""Consumer runner against a real, private RabbitMQ node."""

from __future__ import annotations

import dataclasses
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pika
import pytest
from prometheus_client import REGISTRY

from offload_core.headers import ATTEMPT_HEADER, ENQUEUED_AT_HEADER, PARK_REASON_HEADER
from offload_core.metrics import QUEUE_BUCKETS
from offload_core.runner import Message, Park, Retry, Runner
from offload_testkit.amqp import ready_count, take, wait_for
from offload_testkit.messages import signup
from offload_testkit.runner_thread import WORK_QUEUE as QUEUE
from offload_testkit.runner_thread import WORK_TOPOLOGY as TOPOLOGY
from offload_testkit.runner_thread import RunnerThread

PARKED = "t.work.parked"


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_handled_messages_are_acked_and_time_on_queue_counts_each(core_config, publisher, amqp_url):
    seen: list[str] = []
    before = sample("offload_message_time_on_queue_seconds_count", queue=QUEUE, lane="high")
    acked_before = sample("offload_messages_total", queue=QUEUE, outcome="acked")
    sent = [signup() for _ in range(25)]
    for envelope in sent:
        publisher.publish(envelope, correlation_id="req-42")
    with RunnerThread(core_config, lambda m: seen.append(m.id)):
        wait_for(lambda: len(seen) == 25, what="25 messages handled")
        wait_for(lambda: sample("offload_messages_total", queue=QUEUE, outcome="acked") - acked_before == 25)
    assert sorted(seen) == sorted(e.id for e in sent)
    assert ready_count(amqp_url, QUEUE) == 0
    after = sample("offload_message_time_on_queue_seconds_count", queue=QUEUE, lane="high")
    assert after - before == 25


def test_retry_goes_through_a_delay_tier_then_succeeds(core_config, publisher):
    attempts: list[tuple[int, float]] = []

    def handler(message: Message) -> None:
        attempts.append((message.attempt, time.monotonic()))
        if message.attempt == 1:
            raise Retry("SMTP said 421, try later")

    with RunnerThread(core_config, handler):
        publisher.publish(signup())
        wait_for(lambda: len(attempts) == 2, what="second attempt")
    (first, t1), (second, t2) = attempts
    assert (first, second) == (1, 2)
    assert t2 - t1 >= 0.2  # the first delay tier in tests


def test_park_puts_the_message_in_the_parking_queue_with_its_reason(core_config, publisher, amqp_url):
    def handler(message: Message) -> None:
        raise Park("SMTP said 550: no such user")

    envelope = signup()
    with RunnerThread(core_config, handler):
        publisher.publish(envelope)
        [parked] = take(amqp_url, PARKED, expect=1)
    assert parked.properties.message_id == envelope.id
    assert parked.headers[PARK_REASON_HEADER] == "SMTP said 550: no such user"
    assert parked.json() == envelope.to_dict()
    assert ready_count(amqp_url, QUEUE) == 0


def test_unexpected_errors_retry_until_max_attempts_then_park(core_config, publisher, amqp_url):
    attempts: list[int] = []

    def handler(message: Message) -> None:
        attempts.append(message.attempt)
        raise RuntimeError("template exploded")

    with RunnerThread(core_config, handler, max_attempts=3):
        publisher.publish(signup())
        [parked] = take(amqp_url, PARKED, expect=1)
    assert attempts == [1, 2, 3]
    assert "gave up after 3 attempts" in parked.headers[PARK_REASON_HEADER]
    assert "RuntimeError: template exploded" in parked.headers[PARK_REASON_HEADER]
    assert parked.headers[ATTEMPT_HEADER] == 3


@pytest.mark.parametrize(
    ("body", "properties", "reason"),
    [
        (b"not json", {}, "not JSON"),
        (b'{"type": "signup.created"}', {}, "envelope"),
        (signup().to_bytes().replace(b"kiwi", b"durian"), {}, "fruit"),
        (signup().to_bytes(), {"type": "mail.sent"}, "differs"),
        (signup().to_bytes(), {"content_type": "text/plain"}, "content_type"),
        (b"x" * 300_000, {}, "byte limit"),
    ],
)
def test_invalid_messages_are_parked_with_the_reason(core_config, amqp_url, body, properties, reason):
    handled: list[str] = []
    with RunnerThread(core_config, lambda m: handled.append(m.id)):
        connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
        connection.channel().basic_publish(
            "offload.events", "signup.created.high", body, pika.BasicProperties(**properties)
        )
        connection.close()
        [parked] = take(amqp_url, PARKED, expect=1)
    assert handled == []
    assert parked.headers[PARK_REASON_HEADER].startswith("invalid message")
    assert reason in parked.headers[PARK_REASON_HEADER]


def test_poison_message_is_parked_by_the_broker_after_the_delivery_limit(core_config, publisher, amqp_url):
    # A message that kills every runner that takes it never gets acked or nacked by our code;
    # the quorum queue's delivery limit must park it. Simulated with requeueing rejects.
    publisher.publish(signup())
    connection = pika.BlockingConnection(pika.URLParameters(amqp_url))
    channel = connection.channel()
    for _ in range(TOPOLOGY.delivery_limit + 1):
        method, _props, _body = channel.basic_get(QUEUE)
        if method is None:
            break
        channel.basic_nack(method.delivery_tag, requeue=True)
    connection.close()
    [parked] = take(amqp_url, PARKED, expect=1)
    death = parked.headers["x-death"][0]
    assert death["reason"] == "delivery_limit"
    assert death["queue"] == QUEUE


def start_runner_process(amqp_url: str, record: Path, slow: float, **env: str) -> subprocess.Popen:
    environment = os.environ | {
        "OFFLOAD_AMQP_URL": amqp_url,
        "RECORD_FILE": str(record),
        "SLOW_SECONDS": str(slow),
        "OFFLOAD_LOG_FORMAT": "text",
        **env,
    }
    return subprocess.Popen(
        [sys.executable, str(Path(__file__).with_name("runner_app.py"))],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )


def lines(record: Path, prefix: str) -> list[str]:
    if not record.exists():
        return []
    return [line.split()[1] for line in record.read_text().splitlines() if line.startswith(prefix)]


def test_sigterm_finishes_in_flight_work_leaves_the_rest_queued_and_exits_0(publisher, amqp_url, tmp_path):
    record = tmp_path / "record.txt"
    for _ in range(6):
        publisher.publish(signup())
    process = start_runner_process(
        amqp_url,
        record,
        slow=1.5,
        OFFLOAD_PREFETCH="4",
        OFFLOAD_WORKER_THREADS="2",
        OFFLOAD_GRACE_PERIOD="10",
    )
    try:
        wait_for(lambda: len(lines(record, "start")) == 2, timeout=20, what="two handlers running")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == 0, process.stdout.read().decode()
    finally:
        process.kill()
    started, done = lines(record, "start"), lines(record, "done")
    assert sorted(started) == sorted(done) and len(done) == 2
    # The two in-flight ones were acked; prefetched-but-not-started ones went back.
    assert wait_for(lambda: ready_count(amqp_url, QUEUE) == 4, what="4 messages back on the queue")


@pytest.mark.parametrize(("hold", "exit_code"), [("1", 0), ("0", -signal.SIGTERM)])
def test_sigterm_while_starting_exits_0_and_takes_nothing(publisher, amqp_url, tmp_path, hold, exit_code):
    """A scale-down can reach a runner still starting. With the stop signal held (what the
    services do) it exits 0 without consuming; without, the default action kills it."""
    record = tmp_path / "record.txt"
    for _ in range(3):
        publisher.publish(signup())
    process = start_runner_process(amqp_url, record, slow=0, STARTUP_SECONDS="2", HOLD_STOP_SIGNALS=hold)
    try:
        wait_for(lambda: lines(record, "booting"), timeout=20, what="the runner booting")
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=15) == exit_code, process.stdout.read().decode()
    finally:
        process.kill()
    assert lines(record, "start") == []
    assert ready_count(amqp_url, QUEUE) == 3


def test_kill_9_of_a_runner_redelivers_its_unacked_messages(publisher, amqp_url, tmp_path):
    record = tmp_path / "record.txt"
    for _ in range(5):
        publisher.publish(signup())
    process = start_runner_process(
        amqp_url, record, slow=30, OFFLOAD_PREFETCH="5", OFFLOAD_WORKER_THREADS="5"
    )
    try:
        wait_for(lambda: len(lines(record, "start")) == 5, timeout=20, what="five handlers running")
        assert ready_count(amqp_url, QUEUE) == 0
        process.kill()
        process.wait(5)
    finally:
        process.kill()
    wait_for(lambda: ready_count(amqp_url, QUEUE) == 5, what="all five redelivered")
    redelivered = take(amqp_url, QUEUE, expect=5)
    assert all(g.headers.get("x-delivery-count", 0) >= 1 for g in redelivered)


def test_batch_handler_gets_many_messages_at_once_and_acks_them_after(core_config, publisher, amqp_url):
    batches: list[int] = []
    failed_once: list[bool] = []

    def handle(messages: list[Message]) -> None:
        if not failed_once:
            failed_once.append(True)
            raise Retry("store unavailable")  # the whole first batch goes through a delay tier
        batches.append(len(messages))

    futures = [publisher.publish_async(signup()) for _ in range(300)]
    for future in futures:
        future.result(10)
    with RunnerThread(
        core_config, batch_handler=handle, batch_size=100, batch_wait=0.2, prefetch=300, worker_threads=1
    ):
        wait_for(lambda: sum(batches) == 300, timeout=20, what="300 messages in batches")
    assert max(batches) > 1 and max(batches) <= 100
    assert ready_count(amqp_url, "t.work") == 0
    assert ready_count(amqp_url, "t.work.parked") == 0


def test_a_batch_handler_parks_only_the_messages_it_singles_out(core_config, publisher, amqp_url):
    sent = [signup() for _ in range(6)]
    unusable = {sent[1].id, sent[4].id}
    handled: list[str] = []

    def handle(messages: list[Message]) -> dict[str, str]:
        handled.extend(m.id for m in messages if m.id not in unusable)
        return {m.id: "cannot use this one" for m in messages if m.id in unusable}

    for envelope in sent:
        publisher.publish(envelope)
    with RunnerThread(
        core_config, batch_handler=handle, batch_size=10, batch_wait=0.5, prefetch=10, worker_threads=1
    ):
        parked = take(amqp_url, PARKED, expect=2)
    assert {p.json()["id"] for p in parked} == unusable
    assert all(p.headers[PARK_REASON_HEADER] == "cannot use this one" for p in parked)
    assert sorted(handled) == sorted(e.id for e in sent if e.id not in unusable)
    assert ready_count(amqp_url, "t.work") == 0


class Collected(logging.Handler):
    """Records of one logger (`make test` runs without pytest's logging plugin, so no caplog)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_a_broker_that_is_not_there_is_logged_on_the_first_and_every_tenth_attempt(core_config):
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = dataclasses.replace(
        core_config, amqp_url=f"amqp://guest:guest@127.0.0.1:{port}/%2F", reconnect_max_delay=0.02
    )
    runner = Runner(config, TOPOLOGY, {QUEUE: lambda _m: None})
    thread = threading.Thread(target=runner.run, kwargs={"install_signal_handlers": False}, daemon=True)
    collected = Collected()
    logger = logging.getLogger("offload.runner")
    logger.addHandler(collected)
    try:
        thread.start()
        wait_for(lambda: runner._keeper.failures >= 15, what="fifteen failed attempts")
        runner.stop()
        thread.join(5)
    finally:
        logger.removeHandler(collected)
    lines = [r for r in collected.records if "reconnecting" in r.getMessage()]
    assert [r.getMessage() for r in lines] == ["runner cannot reach the broker, reconnecting"] * 2
    assert [r.fields["attempts"] for r in lines] == [1, 11]


HELD = 2.0  # seconds a message waits on its queue before any runner consumes
TOQ = "offload_message_time_on_queue_seconds"


def held_message_reading(core_config, publisher, monkeypatch, *, stamp_on_delivery: bool):  # type: ignore[no-untyped-def]
    """Leave one message HELD seconds on its queue with no consumer, then run it: the time
    on queue the histogram took (its sum's growth), how long it really waited until its
    handler ran, and the lowest bucket that grew."""
    if stamp_on_delivery:  # a runner that timed messages from their arrival
        take = Runner._take

        def stamped_on_delivery(self, delivery):  # type: ignore[no-untyped-def]
            delivery.properties.headers = {**delivery.headers, ENQUEUED_AT_HEADER: int(time.time() * 1000)}
            return take(self, delivery)

        monkeypatch.setattr(Runner, "_take", stamped_on_delivery)
    labels = {"queue": QUEUE, "lane": "high"}

    def buckets() -> dict[float, float]:
        return {le: sample(f"{TOQ}_bucket", le=str(le), **labels) for le in QUEUE_BUCKETS}

    sum_before, buckets_before = sample(f"{TOQ}_sum", **labels), buckets()
    published_at = time.time()
    publisher.publish(signup())
    wait_for(lambda: time.time() - published_at >= HELD, timeout=HELD + 5, what=f"{HELD}s on the queue")
    handled_at: list[float] = []
    with RunnerThread(core_config, lambda m: handled_at.append(time.time())):
        wait_for(lambda: handled_at, what="the held message handled")
    grew = [le for le, count in buckets().items() if count > buckets_before[le]]
    return sample(f"{TOQ}_sum", **labels) - sum_before, handled_at[0] - published_at, min(grew)


def test_time_on_queue_is_the_time_a_message_waited(core_config, publisher, monkeypatch):
    """A message left HELD seconds on its queue is observed as having waited at least HELD
    and no longer than until its handler ran, in the bucket that holds that value."""
    read, waited, bucket = held_message_reading(core_config, publisher, monkeypatch, stamp_on_delivery=False)
    assert HELD <= read <= waited + 0.05, f"time on queue read {read:.3f}s after {waited:.3f}s"
    assert bucket == min(le for le in QUEUE_BUCKETS if read <= le)


def test_control_timed_from_delivery_the_held_message_reads_about_zero(core_config, publisher, monkeypatch):
    """Negative control: timed from its delivery, the same message reads about 0 and lands
    in the lowest buckets, so the check above would fail."""
    read, waited, bucket = held_message_reading(core_config, publisher, monkeypatch, stamp_on_delivery=True)
    assert waited >= HELD and read < 0.5 and bucket < 1.0, (read, bucket)
