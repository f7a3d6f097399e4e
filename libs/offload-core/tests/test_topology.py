"""Topology helpers that need no broker."""

from __future__ import annotations

import pytest

from offload_core.topology import STACK_QUEUES, Topology, delay_queue_name, topic_matches


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
