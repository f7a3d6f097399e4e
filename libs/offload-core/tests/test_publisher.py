"""Publisher against a real, private RabbitMQ node."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from pika import BasicProperties as pika_properties
from prometheus_client import REGISTRY

from offload_core import outgoing as outgoing_module
from offload_core import publisher as publisher_module
from offload_core import session as session_module
from offload_core.headers import ENQUEUED_AT_HEADER
from offload_core.publisher import Publisher, PublishError, PublishNacked, PublishTimeout, Unroutable
from offload_core.topology import Topology, WorkQueue
from offload_testkit.amqp import ready_count, take, wait_for
from offload_testkit.loops import counted_wake_ups, held
from offload_testkit.messages import signup, started_publisher
from offload_testkit.processes import free_port
from offload_testkit.tcp_proxy import TcpProxy

TOPOLOGY = Topology((WorkQueue("t.signups", ("signup.created.*",)),), delay_tiers=(0.2, 0.5))


@pytest.fixture
def publisher(core_config):
    with started_publisher(core_config, TOPOLOGY) as publisher:
        yield publisher


def test_confirmed_publish_lands_in_the_queue_with_envelope_properties(publisher, amqp_url):
    envelope = signup()
    publisher.publish(envelope, correlation_id="req-1")
    [got] = take(amqp_url, "t.signups", expect=1)
    assert got.json() == envelope.to_dict()
    assert got.routing_key == "signup.created.high"
    props = got.properties
    assert props.message_id == envelope.id
    assert props.type == "signup.created"
    assert props.content_type == "application/json"
    assert props.delivery_mode == 2
    assert props.correlation_id == "req-1"
    assert isinstance(props.timestamp, int)
    assert isinstance(got.headers[ENQUEUED_AT_HEADER], int)


def test_unroutable_publish_raises(core_config):
    # No queue bound: the broker returns the mandatory message.
    publisher = Publisher(core_config, Topology(())).start()
    try:
        assert publisher.wait_ready(10)
        with pytest.raises(Unroutable):
            publisher.publish(signup())
    finally:
        publisher.close()


def test_a_nack_is_reported_and_the_publisher_continues_on_a_new_connection(core_config, rabbitmq_broker):
    """A real broker nacks: a queue of one message that refuses more (x-overflow
    reject-publish; the topology's own queues have no limit). The caller hears PublishNacked,
    and the publisher replaces its connection (RabbitMQ 3.10 keeps nacking on a channel
    whose quorum queue leader died), then publishes on the new one."""
    import pika

    vhost = core_config.amqp_url.rsplit("/", 1)[1]
    setup = pika.BlockingConnection(pika.URLParameters(core_config.amqp_url))
    channel = setup.channel()
    channel.exchange_declare("offload.events", "topic", durable=True)
    channel.queue_declare(
        "t.one", durable=True, arguments={"x-max-length": 1, "x-overflow": "reject-publish"}
    )
    channel.queue_bind("t.one", "offload.events", "signup.created.*")
    setup.close()

    def connections() -> set[str]:
        listed = rabbitmq_broker.http.get(f"{rabbitmq_broker.management_url}/api/vhosts/{vhost}/connections")
        return {c["name"] for c in listed.json()}

    publisher = Publisher(core_config, topology=None).start()
    try:
        assert publisher.wait_ready(10)
        publisher.publish(signup())
        first = wait_for(connections, timeout=15, what="the publisher's connection listed")
        with pytest.raises(PublishNacked):
            publisher.publish(signup())
        wait_for(lambda: (now := connections()) and not now & first, timeout=15, what="a new connection")
        assert ready_count(core_config.amqp_url, "t.one") == 1
        take(core_config.amqp_url, "t.one", expect=1)
        publisher.publish(signup())  # room again: confirmed on the new connection
        assert ready_count(core_config.amqp_url, "t.one") == 1

        # Fire and forget: a nacked message is not dropped, it goes again until it lands.
        def nacks() -> float:
            sample = REGISTRY.get_sample_value(
                "offload_published_total", {"exchange": "offload.events", "result": "nacked"}
            )
            return sample or 0.0

        before = nacks()
        event = signup(name="Again")
        assert publisher.publish_nowait(event)
        wait_for(lambda: nacks() > before, timeout=15, what="the fire-and-forget message nacked")
        [held] = take(core_config.amqp_url, "t.one", expect=1)  # room for the one going again
        assert held.json()["data"]["name"] == "Ada"
        [landed] = take(core_config.amqp_url, "t.one", expect=1, timeout=30)
        assert landed.json()["id"] == event.id
    finally:
        publisher.close()


def test_invalid_envelope_is_refused_before_it_is_sent(publisher, amqp_url):
    with pytest.raises(ValueError, match="fruit"):
        publisher.publish(signup(fruit="durian"))
    with pytest.raises(ValueError, match="lanes"):
        publisher.publish(signup(), lane="normal")
    assert take(amqp_url, "t.signups") == []


def publish_from_threads(publisher: Publisher, timeout: float | None = None) -> list[BaseException]:
    """8 threads publish 50 signups each, every one waiting for its confirm; what they raised."""
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(50):
                publisher.publish(signup(), timeout=timeout)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_many_threads_publish_concurrently_and_all_are_confirmed(publisher, amqp_url):
    assert publish_from_threads(publisher) == []
    got = take(amqp_url, "t.signups", expect=400)
    assert len({g.properties.message_id for g in got}) == 400


def _wake_only_when_no_confirm_is_due(publisher: Publisher) -> None:
    """Negative control: a caller queued while other confirms are due waits for the flush
    that follows the next confirm, instead of waking the I/O thread."""
    wake = publisher._wake

    def wake_when_idle() -> None:
        if not publisher._confirms:
            wake()

    publisher._wake = wake_when_idle  # type: ignore[method-assign]  # the mechanism switched off on purpose


@pytest.mark.parametrize(
    ("switch_off", "written"),
    [(None, True), (_wake_only_when_no_confirm_is_due, False)],
    ids=["woken", "control-left-for-the-next-confirm"],
)
def test_a_caller_is_written_at_once_while_other_confirms_are_due(
    core_config, amqp_url, monkeypatch, switch_off, written
):
    """A confirm that never comes stands for the ones due under load (an entry in the
    unconfirmed map, with a tag the channel never reaches). With the periodic flush out of
    the test's reach, the caller's message leaves only if its own publish wakes the I/O
    thread. The control shows the check fails when it does not."""
    monkeypatch.setattr(publisher_module, "FLUSH_INTERVAL", 3600.0)
    publisher = Publisher(core_config, TOPOLOGY).start()
    try:
        assert publisher.wait_ready(10)
        if switch_off is not None:
            switch_off(publisher)
        due = outgoing_module.Outgoing("", "nowhere", b"", pika_properties(), fire_and_forget=False)
        assert publisher._confirms is not None
        publisher._confirms._unconfirmed[10**9] = due  # a tag the channel never reaches
        if written:
            publisher.publish(signup(), timeout=5)
        else:
            with pytest.raises(PublishTimeout, match="withdrawn, not sent"):
                publisher.publish(signup(), timeout=2)
    finally:
        publisher.close(timeout=1)
    assert len(take(amqp_url, "t.signups")) == (1 if written else 0)


def _wake_every_time(publisher: Publisher) -> None:
    """Negative control: every caller schedules a flush of its own."""
    publisher._wake = lambda: publisher._ioloop.add_callback_threadsafe(publisher._flush)  # type: ignore[method-assign,union-attr]


@pytest.mark.parametrize(
    ("switch_off", "wake_ups"),
    [(None, 1), (_wake_every_time, 50)],
    ids=["shared", "control-one-each"],
)
def test_callers_queued_while_the_io_thread_is_busy_share_one_wake_up(
    core_config, amqp_url, switch_off, wake_ups
):
    """Waking the I/O thread is a pipe write and a thread switch: one scheduled flush
    serves every caller queued before it runs. The I/O thread is held in a callback while
    50 callers queue, so the count does not depend on timing."""
    publisher = Publisher(core_config, TOPOLOGY).start()
    if switch_off is not None:
        switch_off(publisher)
    try:
        assert publisher.wait_ready(10)
        with held(publisher._ioloop) as release:
            with counted_wake_ups(publisher._ioloop) as scheduled:
                futures = [publisher.publish_async(signup()) for _ in range(50)]
            assert scheduled.count == wake_ups
            release.set()
            for future in futures:
                publisher.wait(future, 10)
    finally:
        publisher.close()
    assert len(take(amqp_url, "t.signups", expect=50)) == 50


def test_broker_unreachable_times_out_quickly(core_config):
    import dataclasses
    import time

    config = dataclasses.replace(
        core_config, amqp_url="amqp://guest:guest@127.0.0.1:1/%2F", confirm_timeout=0.5
    )
    publisher = Publisher(config, TOPOLOGY).start()
    try:
        started = time.monotonic()
        with pytest.raises(PublishTimeout, match="not connected"):
            publisher.publish(signup())
        assert time.monotonic() - started < 2
    finally:
        publisher.close(timeout=0.5)


def _republish_everything(publisher: Publisher) -> None:
    """Negative control: the behaviour the publisher must not have, every unconfirmed
    message published again on the next connection, whatever its caller was told."""

    def requeue(pending: list[outgoing_module.Outgoing]) -> None:
        publisher._outbox.put_first(pending)

    publisher._requeue_unconfirmed = requeue  # type: ignore[method-assign]  # the mechanism switched off on purpose


@pytest.mark.parametrize(
    ("lost", "behaviour"),
    [
        ("on the way to the broker", "never resend"),
        ("after the broker took it", "never resend"),
        ("after the broker took it", "resend (negative control)"),
    ],
)
def test_a_message_unconfirmed_when_the_connection_drops_fails_at_once_and_is_not_resent(
    core_config, amqp_url, rabbitmq_broker, lost, behaviour
):
    """The ambiguous case: the message was written, no confirm came, the connection dropped.
    The caller hears so at once, not after its timeout, and the message is not published
    again on the next connection. Whether it landed is the remaining window: the broker
    may hold it (the second case), and the caller closes that window by retrying with the
    same message id, which consumers de-duplicate."""
    proxy = TcpProxy("127.0.0.1", rabbitmq_broker.amqp_port)
    url = proxy.route(amqp_url)
    publisher = Publisher(dataclasses.replace(core_config, amqp_url=url), TOPOLOGY).start()
    try:
        assert publisher.wait_ready(10)
        if behaviour != "never resend":
            _republish_everything(publisher)
        if lost == "on the way to the broker":
            proxy.swallow_to_server = True
        else:
            proxy.swallow_to_client = True
        unconfirmed = signup()
        future = publisher.publish_async(unconfirmed)
        wait_for(lambda: future.outgoing.state == outgoing_module.WRITTEN, what="message written")
        if lost == "after the broker took it":
            wait_for(lambda: ready_count(amqp_url, "t.signups") == 1, what="the broker routed it")
        started = time.monotonic()
        proxy.cut()
        error: PublishError | None = None
        try:
            publisher.wait(future, timeout=10)
        except PublishError as exc:
            error = exc
        answered_after = time.monotonic() - started
        wait_for(lambda: publisher.ready, timeout=30, what="publisher reconnected")
        marker = signup()
        publisher.publish(marker)
    finally:
        publisher.close()
        proxy.close()
    landed = [g.properties.message_id for g in take(amqp_url, "t.signups")]
    if behaviour == "never resend":
        assert isinstance(error, publisher_module.ConnectionLost), error
        assert answered_after < 2, f"the caller heard of the lost connection after {answered_after:.1f}s"
        assert landed == ([marker.id] if lost == "on the way to the broker" else [unconfirmed.id, marker.id])
    else:
        # What the checks above catch: the caller is told "confirmed" and the message is there twice.
        assert error is None
        assert landed == [unconfirmed.id, unconfirmed.id, marker.id]


@pytest.mark.parametrize("on_demand", ["attempt brought forward", "fixed backoff (negative control)"])
def test_a_waiting_caller_finds_a_broker_that_came_back_during_a_long_backoff(
    core_config, rabbitmq_broker, amqp_url, monkeypatch, on_demand
):
    """A process that started before its broker sits in a long backoff; the broker comes
    up (another process of the same service already answers ready). A request that now
    waits for a confirm must not time out waiting for the backoff to run out."""
    monkeypatch.setattr(session_module, "reconnect_delay", lambda attempt, maximum: 60.0)
    if on_demand != "attempt brought forward":
        monkeypatch.setattr(publisher_module, "DEMAND_RECONNECT_INTERVAL", float("inf"))
    port = free_port()
    url = amqp_url.replace(f":{rabbitmq_broker.amqp_port}/", f":{port}/")
    publisher = Publisher(dataclasses.replace(core_config, amqp_url=url), TOPOLOGY).start()
    proxy: TcpProxy | None = None
    try:
        wait_for(
            lambda: publisher._keeper is not None and publisher._keeper.waiting,
            what="the first attempt refused, the next one due",
        )
        proxy = TcpProxy("127.0.0.1", rabbitmq_broker.amqp_port, port=port)  # the broker is up
        envelope = signup()
        started = time.monotonic()
        error: PublishError | None = None
        try:
            publisher.publish(envelope, timeout=4)
        except PublishError as exc:
            error = exc
        answered_after = time.monotonic() - started
    finally:
        publisher.close(timeout=0.5)
        if proxy is not None:
            proxy.close()
    if on_demand == "attempt brought forward":
        assert error is None, error
        assert [g.properties.message_id for g in take(amqp_url, "t.signups")] == [envelope.id]
        assert answered_after < DEMAND_BOUND, f"confirmed after {answered_after:.1f}s"
    else:
        # What the check above catches: the caller waits out its timeout, nothing is sent
        # (the publisher never connected, so it never even declared the queue).
        assert isinstance(error, PublishTimeout) and error.withdrawn, error


# The attempt is brought forward to 1 s after the refused one; connecting and the confirm
# take milliseconds. The bound leaves room for a loaded machine, well inside the timeout.
DEMAND_BOUND = 3.5


def test_attempt_on_demand_never_postpones_and_keeps_the_interval():
    assert session_module.attempt_on_demand(100.0, 10.0, 1.0) == 11.0
    assert session_module.attempt_on_demand(10.5, 10.0, 1.0) == 10.5
    assert session_module.attempt_on_demand(100.0, 10.0, float("inf")) == 100.0
