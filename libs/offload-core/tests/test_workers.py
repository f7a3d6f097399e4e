"""The worker pool on its own: batching and the hard time limit, with plain items."""

from __future__ import annotations

import threading
import time

from offload_core.workers import WorkerPool
from offload_testkit.amqp import wait_for


def test_items_waiting_together_are_handed_over_as_one_batch():
    batches: list[list[int]] = []
    release = threading.Event()

    def process(batch: list[int]) -> None:
        batches.append(batch)
        release.wait(5)

    pool: WorkerPool[int] = WorkerPool(process, threads=1, batch_size=4, batch_wait=0.2)
    pool.start()
    pool.submit(0)
    wait_for(lambda: batches == [[0]], what="the first item on its own")
    for item in range(1, 7):
        pool.submit(item)  # queued while the only thread is busy
    release.set()
    wait_for(lambda: sum(len(b) for b in batches) == 7, what="every item processed")
    pool.stop()
    assert batches == [[0], [1, 2, 3, 4], [5, 6]]


def test_a_batch_past_the_limit_is_reported_once_and_its_thread_is_replaced():
    started, stuck = threading.Event(), threading.Event()
    done: list[int] = []

    def process(batch: list[int]) -> None:
        if batch == [1]:
            started.set()
            stuck.wait(10)
        done.extend(batch)

    pool: WorkerPool[int] = WorkerPool(process, threads=1)
    pool.start()
    pool.submit(1)
    assert started.wait(5)
    assert pool.take_overdue(limit=60.0, now=time.monotonic()) == []
    overdue = pool.take_overdue(limit=0.0, now=time.monotonic() + 1)
    assert [o.items for o in overdue] == [[1]]
    assert pool.take_overdue(limit=0.0, now=time.monotonic() + 1) == []  # reported once
    pool.submit(2)  # the replacement thread takes it while the first is still stuck
    wait_for(lambda: done == [2], what="the replacement thread at work")
    stuck.set()
    wait_for(lambda: done == [2, 1], what="the stuck call returning")
    pool.stop()
