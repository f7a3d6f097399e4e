"""offload_core.coalescer on pika's own I/O loop: requests made while the loop is busy share
one run of the target; the control, a run per request, is what the coalescer saves."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest
from pika.adapters.select_connection import IOLoop

from offload_core.coalescer import Coalescer, Handoff
from offload_testkit.loops import counted_wake_ups, held


@pytest.fixture
def held_loop() -> Iterator[tuple[IOLoop, threading.Event]]:
    """A running IOLoop held in a callback until the test sets the event."""
    loop = IOLoop()
    thread = threading.Thread(target=loop.start, daemon=True)
    thread.start()
    with held(loop) as release:
        yield loop, release
    loop.add_callback_threadsafe(loop.stop)
    thread.join(10)


def drained(loop: IOLoop) -> None:
    done = threading.Event()
    loop.add_callback_threadsafe(done.set)
    assert done.wait(10)


def test_requests_made_while_the_loop_is_busy_share_one_run(held_loop):
    loop, release = held_loop
    runs = []
    coalescer = Coalescer(loop, lambda: runs.append(1))
    for _ in range(50):
        coalescer.request()
    release.set()
    drained(loop)
    assert len(runs) == 1
    coalescer.request()  # a request after the run schedules the next one
    drained(loop)
    assert len(runs) == 2


def test_control_a_run_per_request_without_the_coalescer(held_loop):
    loop, release = held_loop
    runs = []
    for _ in range(50):
        loop.add_callback_threadsafe(lambda: runs.append(1))
    release.set()
    drained(loop)
    assert len(runs) == 50


def test_a_handoff_delivers_every_item_in_order_in_one_wake_up(held_loop):
    loop, release = held_loop
    handled: list[int] = []
    handoff: Handoff[int] = Handoff(loop, handled.append)
    with counted_wake_ups(loop) as wake_ups:
        for i in range(100):
            handoff.put(i)
    release.set()
    drained(loop)
    assert handled == list(range(100)) and wake_ups.count == 1
