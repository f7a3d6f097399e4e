"""Slowloris for tests and benchmarks: clients that open connections and never finish
their request headers."""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass, field


@dataclass
class SlowHeaderCrowd:
    """`size` connections that each send one byte of a never-ending header a second. A
    connection the server answers or closes is opened again at once, so the crowd stays
    `size` strong for as long as it runs."""

    address: tuple[str, int]
    size: int
    reopened: int = 0
    answers: list[bytes] = field(default_factory=list)
    answered: threading.Event = field(default_factory=threading.Event)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> SlowHeaderCrowd:
        self._sockets = [self._open() for _ in range(self.size)]
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        assert self._thread is not None
        self._thread.join(timeout=10)
        for connection in self._sockets:
            connection.close()

    def _open(self) -> socket.socket:
        connection = socket.create_connection(self.address, timeout=5)
        connection.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        connection.setblocking(False)
        return connection

    def _run(self) -> None:
        while not self._stop.wait(1.0):  # one byte a second per connection
            for index, connection in enumerate(self._sockets):
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
                    self.answers.append(answer)
                    self.answered.set()
                connection.close()
                self._sockets[index] = self._open()
                self.reopened += 1
