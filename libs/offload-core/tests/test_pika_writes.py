"""With OFFLOAD_FEWER_SYSCALLS on, the core's connections send their buffered frames joined
(offload_core.pika_writes), counted at the socket against a real broker; by default, and as
the negative control, pika's own loop makes one send per frame."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator

import pytest
from pika.adapters.utils.io_services_utils import _AsyncTransportBase

from offload_core import fewer_syscalls
from offload_core.topology import Topology, WorkQueue
from offload_testkit.amqp import ready_count
from offload_testkit.messages import publish_all, signup, started_publisher

TOPOLOGY = Topology((WorkQueue("w.signups", ("signup.created.*",)),), delay_tiers=(0.2,))
MESSAGES = 200
FRAMES = 3 * MESSAGES  # method, header and body frame each


@pytest.fixture
def sends(monkeypatch) -> Iterator[list[int]]:
    """The size of every send() the transports make while the test runs."""
    sizes: list[int] = []
    send = _AsyncTransportBase._sigint_safe_send

    def counted(sock, data):
        sent = send(sock, data)
        sizes.append(sent)
        return sent

    monkeypatch.setattr(_AsyncTransportBase, "_sigint_safe_send", staticmethod(counted))
    yield sizes


def publish_signups(core_config, amqp_url, sends: list[int]) -> int:
    """Publish MESSAGES pipelined and confirmed; the send() calls it took."""
    with started_publisher(core_config, TOPOLOGY) as publisher:
        before = len(sends)
        publish_all(publisher, [signup(email=f"w{i}@example.com") for i in range(MESSAGES)])
        calls = len(sends) - before
    assert ready_count(amqp_url, "w.signups") == MESSAGES  # every message arrived, whole
    return calls


@pytest.fixture(autouse=True)
def as_pika_ships() -> Iterator[None]:
    yield
    fewer_syscalls.apply(False)


def test_with_fewer_syscalls_pipelined_publishes_leave_in_far_fewer_sends_than_frames(
    core_config, amqp_url, sends
):
    calls = publish_signups(dataclasses.replace(core_config, fewer_syscalls=True), amqp_url, sends)
    assert fewer_syscalls.enabled()
    assert calls < MESSAGES / 2, f"{calls} sends for {FRAMES} frames"


def test_by_default_every_frame_is_a_send(core_config, amqp_url, sends):
    """Negative control and the default: pika's own _produce; the same count sees one send
    a frame."""
    fewer_syscalls.apply(True)  # a publisher with the default config puts pika's loop back
    calls = publish_signups(core_config, amqp_url, sends)
    assert not fewer_syscalls.enabled()
    assert calls >= FRAMES, f"{calls} sends for {FRAMES} frames"
