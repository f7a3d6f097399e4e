"""A real SMTP server for tests (aiosmtpd) that records what it receives.

`replies` scripts answers to DATA ("451 4.3.0 try later", "550 5.1.1 no such user"),
one per message, before it goes back to 250. stop()/start() take it off the network
and bring it back on the same port.
"""

from __future__ import annotations

import collections
import email
import email.policy
import threading
import time
from email.message import EmailMessage
from typing import Any

from aiosmtpd.controller import Controller

from offload_testkit.processes import free_port


class SmtpSink:
    def __init__(self, port: int | None = None, delay: float = 0.0) -> None:
        self.port = port or free_port()
        self.delay = delay
        self.replies: collections.deque[str] = collections.deque()
        self.messages: list[EmailMessage] = []
        self._lock = threading.Lock()
        self._controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.delay:
            time.sleep(self.delay)  # a slow server, on purpose
        if self.replies:
            return self.replies.popleft()
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        with self._lock:
            self.messages.append(message)  # type: ignore[arg-type]
        return "250 2.0.0 OK"

    def start(self) -> SmtpSink:
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def by_header(self, name: str) -> dict[str, list[EmailMessage]]:
        grouped: dict[str, list[EmailMessage]] = collections.defaultdict(list)
        with self._lock:
            for message in self.messages:
                grouped[str(message[name])].append(message)
        return grouped

    def count(self) -> int:
        with self._lock:
            return len(self.messages)
