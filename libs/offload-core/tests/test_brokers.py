"""Broker URLs: one node or a cluster's nodes, taken in turn; bad URLs named, never echoed."""

from __future__ import annotations

import dataclasses

import pika
import pytest

from offload_core.brokers import BrokerNodes, blocking_connection, split_urls
from offload_core.config import ConfigError, CoreConfig
from offload_core.envelope import Envelope
from offload_testkit.amqp import wait_for
from offload_testkit.processes import free_port


def test_one_url_or_several_separated_by_semicolons():
    assert split_urls("amqp://a:5672/%2F") == ("amqp://a:5672/%2F",)
    assert split_urls(" amqp://a/v ; amqps://b/v ;") == ("amqp://a/v", "amqps://b/v")


@pytest.mark.parametrize("raw", ["", " ; ", "http://user:secret@a/", "a:5672"])
def test_a_bad_url_is_a_config_error_naming_the_variable_without_the_password(raw):
    with pytest.raises(ConfigError) as caught:
        CoreConfig.from_env({"OFFLOAD_AMQP_URL": raw or ";"})
    assert "OFFLOAD_AMQP_URL" in str(caught.value)
    assert "secret" not in str(caught.value)


def test_each_attempt_takes_the_next_node_with_our_settings():
    nodes = BrokerNodes(
        "amqp://u:p@n1:5672/v;amqp://u:p@n2:5673/v",
        connection_name="web:publisher",
        heartbeat=7,
        blocked_connection_timeout=3.0,
    )
    taken = [nodes.next_parameters() for _ in range(5)]
    hosts = [(p.host, p.port) for p in taken]
    # In turn, from a random first node (so a cluster's clients spread over its nodes).
    assert hosts[0] in [("n1", 5672), ("n2", 5673)]
    assert all(hosts[i] != hosts[i + 1] for i in range(4)) and hosts[0] == hosts[2] == hosts[4]
    assert all(p.heartbeat == 7 and p.blocked_connection_timeout == 3.0 for p in taken)
    assert taken[0].client_properties == {"connection_name": "web:publisher"}
    assert taken[0].virtual_host == "v"


def test_a_blocking_connection_goes_past_a_dead_node_to_a_live_one(rabbitmq_broker):
    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    connection = blocking_connection(f"{dead};{rabbitmq_broker.amqp_url()}")
    try:
        assert connection.is_open
    finally:
        connection.close()
    with pytest.raises(pika.exceptions.AMQPConnectionError):
        blocking_connection(dead)


def test_publisher_and_runner_reach_the_live_node_of_a_list_with_a_dead_one(core_config, amqp_url):
    # Negative control: the same test with only the dead URL never gets ready (the publisher
    # and the runner really do move on to the next node, not retry the first forever).
    from offload_core.publisher import Publisher
    from offload_testkit.runner_thread import WORK_QUEUE as QUEUE
    from offload_testkit.runner_thread import WORK_TOPOLOGY as TOPOLOGY
    from offload_testkit.runner_thread import RunnerThread

    dead = f"amqp://guest:guest@127.0.0.1:{free_port()}/%2F"
    config = dataclasses.replace(core_config, amqp_url=f"{dead};{amqp_url}", reconnect_max_delay=0.5)
    publisher = Publisher(config, TOPOLOGY).start()
    handled: list[str] = []
    try:
        assert publisher.wait_ready(10)
        with RunnerThread(config, lambda message: handled.append(message.id)):
            envelope = Envelope(
                "signup.created", {"name": "Ada", "email": "a@example.com", "fruit": "kiwi", "lane": "high"}
            )
            publisher.publish(envelope)
            wait_for(lambda: handled == [envelope.id], timeout=10, what=f"{QUEUE} handled the signup")
    finally:
        publisher.close()

    stuck = Publisher(dataclasses.replace(config, amqp_url=dead), TOPOLOGY).start()
    try:
        assert not stuck.wait_ready(2)
    finally:
        stuck.close()
