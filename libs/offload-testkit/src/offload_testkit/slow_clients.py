"""Slowloris for tests and benchmarks: clients that open connections and never finish
their request headers.

The crowd runs in a process of its own: in the test's process its bursts of reconnections
would hold the interpreter lock between a prompt client's connect and its request, and so
delay the prompt client itself, which no real crowd can do.
"""

from __future__ import annotations

import multiprocessing
import queue
import socket
from multiprocessing.queues import Queue
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event

_CONTEXT = multiprocessing.get_context("spawn")  # nothing of the test's process carried over


def _open(address: tuple[str, int]) -> socket.socket:
    connection = socket.create_connection(address, timeout=5)
    connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
    connection.setblocking(False)
    return connection


def _crowd(
    address: tuple[str, int],
    size: int,
    ready: Event,
    stop: Event,
    reopened: Synchronized[int],
    answers: Queue[bytes],
) -> None:
    connections = [_open(address) for _ in range(size)]
    ready.set()
    while not stop.wait(1.0):  # one byte a second per connection
        for index, connection in enumerate(connections):
            try:
                answer = connection.recv(4096)
            except BlockingIOError:
                answer = None  # nothing from the server: still waiting for our headers
            except OSError:
                answer = b""
            if answer is None:
                try:
                    connection.send(b"a")
                    continue
                except OSError:
                    answer = b""
            if answer:
                answers.put(answer)
            connection.close()
            connections[index] = _open(address)
            with reopened.get_lock():
                reopened.value += 1
    for connection in connections:
        connection.close()


class SlowHeaderCrowd:
    """`size` connections that each send one byte of a never-ending header a second. A
    connection the server answers or closes is opened again at once, so the crowd stays
    `size` strong for as long as it runs."""

    def __init__(self, address: tuple[str, int], size: int) -> None:
        self.address = address
        self.size = size
        self._ready = _CONTEXT.Event()
        self._stop = _CONTEXT.Event()
        self._reopened: Synchronized[int] = _CONTEXT.Value("i", 0)
        self._answers: Queue[bytes] = _CONTEXT.Queue()
        self._process = _CONTEXT.Process(
            target=_crowd,
            args=(address, size, self._ready, self._stop, self._reopened, self._answers),
            daemon=True,
        )

    @property
    def reopened(self) -> int:
        """Connections the server cut and the crowd opened again."""
        return int(self._reopened.value)

    def first_answer(self, timeout: float) -> bytes | None:
        """The first answer the server sent a member of the crowd, or None within `timeout`."""
        try:
            answer: bytes = self._answers.get(timeout=timeout)
        except queue.Empty:
            return None
        return answer

    def __enter__(self) -> SlowHeaderCrowd:
        self._process.start()
        if not self._ready.wait(60):
            self._process.kill()
            raise AssertionError(f"the crowd of {self.size} did not connect to {self.address}")
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._process.join(timeout=15)
        if self._process.is_alive():
            self._process.kill()
