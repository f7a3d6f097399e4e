"""pytest fixtures: a private RabbitMQ node per session and a fresh vhost per test."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from offload_core.config import CoreConfig
from offload_testkit.rabbitmq import PrivateBroker


@pytest.fixture(scope="session")
def rabbitmq_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path_factory.mktemp("rabbitmq"))
    broker.start()
    yield broker
    broker.stop()


@pytest.fixture
def amqp_vhost(rabbitmq_broker: PrivateBroker) -> Iterator[str]:
    name = rabbitmq_broker.create_vhost()
    yield name
    rabbitmq_broker.delete_vhost(name)


@pytest.fixture
def amqp_url(rabbitmq_broker: PrivateBroker, amqp_vhost: str) -> str:
    return rabbitmq_broker.amqp_url(amqp_vhost)


@pytest.fixture
def core_config(amqp_url: str, rabbitmq_broker: PrivateBroker) -> CoreConfig:
    """Settings for tests: short delay tiers and timeouts so retry paths run in seconds."""
    return dataclasses.replace(
        CoreConfig(),
        amqp_url=amqp_url,
        management_url=rabbitmq_broker.management_url_with_credentials(),
        confirm_timeout=3.0,
        delay_tiers=(0.2, 0.5, 1.0),
        grace_period=5.0,
        reconnect_max_delay=1.0,
        service_name="test",
    )
