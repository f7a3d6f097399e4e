"""A pool of worker threads for a runner: batching and the hard time limit, nothing else.

It knows nothing of messages, retries or parking: it hands batches of work items to
`process` and can say which batches have run too long. Python cannot kill a thread, so a
thread stuck past the limit is retired (it exits when its call returns, if ever) and a
new one takes its place: the pool keeps its capacity.
"""

from __future__ import annotations

import queue as queue_module
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

Item = TypeVar("Item")


@dataclass(frozen=True)
class Overdue(Generic[Item]):
    """A batch that has run past the limit, and since when (monotonic seconds)."""

    items: list[Item]
    started: float


class WorkerPool(Generic[Item]):
    def __init__(
        self,
        process: Callable[[list[Item]], None],
        *,
        threads: int,
        batch_size: int = 1,
        batch_wait: float = 0.0,
        name: str = "offload-worker",
    ) -> None:
        self._process = process
        self._threads = threads
        self._batch_size = batch_size
        self._batch_wait = batch_wait
        self._name = name
        self._work: queue_module.SimpleQueue[Item | None] = queue_module.SimpleQueue()
        self._lock = threading.Lock()
        self._running: dict[int, tuple[list[Item], float]] = {}  # thread ident -> batch, start
        self._retired: set[int] = set()
        self._workers: list[threading.Thread] = []

    def start(self) -> None:
        for _ in range(self._threads):
            self._add_thread()

    def submit(self, item: Item) -> None:
        self._work.put(item)

    def stop(self, join_timeout: float = 0.5) -> None:
        """Let each thread finish its batch and exit; wait briefly for them."""
        for _ in self._workers:
            self._work.put(None)
        for worker in self._workers:
            worker.join(timeout=join_timeout)

    def take_overdue(self, limit: float, now: float) -> list[Overdue[Item]]:
        """Batches running for longer than `limit`: their threads are retired and replaced,
        and the batches are no longer this pool's to report."""
        with self._lock:
            late = [ident for ident, (_, started) in self._running.items() if now - started > limit]
            overdue = [Overdue(*self._running.pop(ident)) for ident in late]
            self._retired.update(late)
        for _ in late:
            self._add_thread()
        return overdue

    def _add_thread(self) -> None:
        worker = threading.Thread(target=self._loop, name=self._name, daemon=True)
        self._workers.append(worker)
        worker.start()

    def _loop(self) -> None:
        ident = threading.get_ident()
        while ident not in self._retired:
            batch = self._next_batch()
            if batch is None:
                return
            with self._lock:
                self._running[ident] = (batch, time.monotonic())
            try:
                self._process(batch)
            finally:
                with self._lock:
                    self._running.pop(ident, None)

    def _next_batch(self) -> list[Item] | None:
        first = self._work.get()
        if first is None:
            return None
        batch = [first]
        # What is already waiting, up to batch_size, for at most batch_wait: one store
        # transaction per batch instead of one per message.
        deadline = time.monotonic() + self._batch_wait
        while len(batch) < self._batch_size:
            remaining = deadline - time.monotonic()
            try:
                item = self._work.get(timeout=remaining) if remaining > 0 else self._work.get_nowait()
            except queue_module.Empty:
                break
            if item is None:
                self._work.put(None)  # the stop is for this thread too, after this batch
                break
            batch.append(item)
        return batch
