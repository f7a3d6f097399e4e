"""Topology helpers that need no broker."""

from __future__ import annotations

from urllib.parse import quote

import pytest
import requests

from offload_core.contracts import default_contracts
from offload_core.topology import (
    STACK_QUEUES,
    STATS_ACTIVITY_QUEUE,
    Topology,
    WorkQueue,
    declare,
    delay_queue_name,
    topic_matches,
)


@pytest.mark.parametrize(
    ("pattern", "key", "matches"),
    [
        ("signup.created.*", "signup.created.high", True),
        ("signup.created.*", "signup.created", False),
        ("signup.created.*", "signup.created.high.extra", False),
        ("http.request.#", "http.request", True),
        ("http.request.#", "http.request.normal.x", True),
        ("#", "anything.at.all", True),
        ("mail.sent.*", "mail.failed.normal", False),
    ],
)
def test_topic_matching_follows_amqp(pattern, key, matches):
    assert topic_matches(pattern, key) is matches


def test_lanes_into_each_stack_queue_come_from_bindings_and_contract_lanes():
    topology = Topology(STACK_QUEUES)
    keys = [
        ("signup.created.high", "high"),
        ("signup.created.low", "low"),
        ("signup.accepted.high", "high"),
        ("signup.accepted.low", "low"),
        ("mail.sent.normal", "normal"),
        ("mail.failed.normal", "normal"),
        ("http.request.normal", "normal"),
    ]
    assert topology.lanes_into("mailer.signups.high", keys) == ["high"]
    assert topology.lanes_into("stats.activity", keys) == ["high", "low", "normal"]
    assert topology.lanes_into("stats.requests", keys) == ["normal"]


def test_delay_tiers_grow_then_stay_at_the_longest():
    topology = Topology(STACK_QUEUES, delay_tiers=(5, 30, 300))
    assert [topology.delay_for_attempt(a) for a in (1, 2, 3, 4, 9)] == [5, 30, 300, 300, 300]
    assert delay_queue_name("q", 0.2) == "q.delay.200ms"


PERSONAL_FIELDS = {"name", "email"}


def personal_fields_routed_into(queue: WorkQueue) -> dict[str, set[str]]:
    """Message type -> the personal fields of its contract, for every type (in any of its
    lanes) that the queue's bindings let in."""
    found = {}
    for name, version in default_contracts().known():
        message_type = default_contracts().get(name, version)
        keys = [f"{name}.{lane}" for lane in message_type.lanes]
        if any(topic_matches(p, k) for p in queue.bindings for k in keys):
            fields = PERSONAL_FIELDS & set(message_type.schema["properties"])
            if fields:
                found[name] = fields
    return found


def test_no_stats_queue_is_bound_to_a_message_that_carries_a_name_or_an_address():
    stats_queues = [q for q in STACK_QUEUES if q.name.startswith("stats.")]
    assert stats_queues
    assert {q.name: personal_fields_routed_into(q) for q in stats_queues} == {
        q.name: {} for q in stats_queues
    }
    # Control: the binding it was given up for lets the whole signup in.
    retired = Topology(STACK_QUEUES).queue(STATS_ACTIVITY_QUEUE).retired_bindings
    assert personal_fields_routed_into(WorkQueue(STATS_ACTIVITY_QUEUE, retired)) == {
        "signup.created": {"name", "email"}
    }


def test_retired_bindings_are_unbound_at_every_declare():
    operations = Topology(STACK_QUEUES).operations()
    unbound = [args["routing_key"] for method, args in operations if method == "queue_unbind"]
    assert unbound == ["signup.created.*"]
    bound = {(args["queue"], args["routing_key"]) for method, args in operations if method == "queue_bind"}
    assert (STATS_ACTIVITY_QUEUE, "signup.created.*") not in bound


def test_declaring_on_a_broker_of_the_version_before_removes_the_retired_binding(
    rabbitmq_broker, amqp_vhost, amqp_url
):
    """A broker declared by the version before has stats.activity bound to signup.created.*;
    the stack's declare unbinds it, and declaring again (nothing left to unbind) is a no-op."""
    retired = Topology(STACK_QUEUES).queue(STATS_ACTIVITY_QUEUE).retired_bindings
    before = tuple(
        WorkQueue(q.name, q.bindings + q.retired_bindings) if q.retired_bindings else q for q in STACK_QUEUES
    )

    def stats_bindings() -> set[str]:
        vhost = quote(amqp_vhost, safe="")
        url = f"{rabbitmq_broker.management_url}/api/queues/{vhost}/{STATS_ACTIVITY_QUEUE}/bindings"
        answer = requests.get(url, auth=("guest", "guest"), timeout=5)
        answer.raise_for_status()
        return {b["routing_key"] for b in answer.json() if b["source"] == "offload.events"}

    declare(amqp_url, Topology(before))
    assert set(retired) <= stats_bindings()  # control: the version before's binding is there
    declare(amqp_url, Topology(STACK_QUEUES))
    assert stats_bindings() == set(Topology(STACK_QUEUES).queue(STATS_ACTIVITY_QUEUE).bindings)
    declare(amqp_url, Topology(STACK_QUEUES))
    assert not set(retired) & stats_bindings()
