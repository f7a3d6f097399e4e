"""pytest fixtures: private RabbitMQ (a vhost per test), Redis, SMTP servers and a Kubernetes
control plane, all real."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest

from offload_core.config import CoreConfig
from offload_core.publisher import Publisher
from offload_core.topology import stack_topology
from offload_testkit.kube import LocalControlPlane
from offload_testkit.rabbitmq import PrivateBroker
from offload_testkit.redis_server import PrivateRedis
from offload_testkit.smtp import SmtpSink


@pytest.fixture(scope="session")
def rabbitmq_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
    broker = PrivateBroker(tmp_path_factory.mktemp("rabbitmq"))
    broker.start()
    yield broker
    broker.stop()


def own_rabbitmq_broker():  # noqa: ANN201 - returns a pytest fixture
    """For modules that restart or reconfigure the broker: `rabbitmq_broker = own_rabbitmq_broker()`.

    Each test then gets a node of its own (about 5 s to boot) and the session's node is
    never restarted: RabbitMQ 3.10 can crash a supervisor when a vhost with quorum queues
    is deleted while the node is still recovering from a restart, failing every later test.
    """

    @pytest.fixture(name="rabbitmq_broker")
    def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateBroker]:
        node = PrivateBroker(tmp_path_factory.mktemp("own-rabbitmq"))
        node.start()
        yield node
        node.stop()

    return broker


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
        confirm_timeout=3.0,
        delay_tiers=(0.2, 0.5, 1.0),
        grace_period=5.0,
        reconnect_max_delay=1.0,
        service_name="test",
    )


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PrivateRedis]:
    server = PrivateRedis(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture
def redis_url(redis_server: PrivateRedis) -> str:
    """A clean database on the session's private redis-server."""
    import redis

    redis.Redis.from_url(redis_server.url).flushdb()
    return redis_server.url


@pytest.fixture
def smtp_sink() -> Iterator[SmtpSink]:
    sink = SmtpSink().start()
    yield sink
    sink.stop()


@pytest.fixture
def stack_publisher(core_config: CoreConfig) -> Iterator[Publisher]:
    """A started publisher that declares the stack's topology in the test's vhost."""
    publisher = Publisher(core_config, stack_topology(core_config.delay_tiers)).start()
    assert publisher.wait_ready(10)
    yield publisher
    publisher.close()


@pytest.fixture(scope="session")
def kube_control_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalControlPlane]:
    """etcd + kube-apiserver + kube-controller-manager on loopback (about 10 s to start)."""
    control_plane = LocalControlPlane(tmp_path_factory.mktemp("kube"))
    try:
        control_plane.start()
        yield control_plane
    finally:
        control_plane.close()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that uses the local Kubernetes control plane, directly or through another
    fixture, is marked `kube`, so `make check` can leave them to `make test`."""
    for item in items:
        if "kube_control_plane" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.kube)
