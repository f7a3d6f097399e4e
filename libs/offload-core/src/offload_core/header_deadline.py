"""gunicorn's threaded worker with a deadline for request headers, against slow clients.

gunicorn's gthread worker hands a connection to a thread as soon as its first byte arrives,
and the thread then reads the headers for as long as the client takes: forty clients that
send one header byte a second hold forty threads, and every other client waits (slowloris).
This worker collects the header block in its event loop instead, where a waiting connection
costs a socket and a buffer, not a thread:

- a connection goes to a thread only once its whole header block is in;
- the block must be complete within the header timeout of the first byte (of the connection,
  or of the next request on a kept-alive one), or the connection is answered 408 and cut;
- at most `worker_connections` connections wait at once per worker; a new one beyond that
  cuts the connection that has waited longest, so a crowd of slow clients cannot keep a
  prompt client from being served (it sends its headers long before it becomes the oldest);
- a header block over MAX_HEADER_BYTES is answered 431.

Waiting connections do not count against `worker_connections` (gunicorn stops accepting at
that many): they hold no thread. A request body needs its own deadline, in the app (the
web's `OFFLOAD_WEB_BODY_TIMEOUT`). A gunicorn config takes `worker_class =
with_header_deadline(seconds)`. Written here because neither gunicorn's gthread
worker nor its gevent worker has a header deadline (gunicorn 27; the gevent worker's only
timeout is keep-alive's), and a Python proxy in front would cost another hop for every request.
"""

from __future__ import annotations

import contextlib
import re
import selectors
import socket
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn, ThreadWorker
from prometheus_client import Counter

# gunicorn's own limits allow 100 fields of 8190 bytes; a browser's headers fit in a few
# kilobytes. Every waiting connection may buffer this much, so it bounds the worker's memory:
# worker_connections x 32 KiB (32 MB at the default 1000).
MAX_HEADER_BYTES = 32 * 1024

SLOW_CLIENTS_CUT = Counter(
    "offload_http_slow_clients_cut_total",
    "Connections cut before their request headers were complete, by reason",
    ["reason"],
)

_REQUEST_TIMEOUT = b"HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
_HEADERS_TOO_LARGE = (
    b"HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n"
)


# The first byte of a request line: empty lines before it do not count (RFC 9112 section 2.2
# lets a server skip them), or a client could send two and then take its time.
_CONTENT = re.compile(rb"[^\r\n]")


@dataclass
class HeaderBlock:
    """A request's header block as it arrives, complete at the empty line after its fields.
    Every byte is looked at once however small the pieces it comes in: a client may send its
    32 KiB one byte at a time."""

    received: bytearray = field(default_factory=bytearray)
    complete: bool = False
    _scanned: int = 0
    _request_line_at: int | None = None

    def add(self, chunk: bytes) -> bool:
        """Append `chunk`; whether the block is now complete."""
        self.received += chunk
        if self._request_line_at is None:
            found = _CONTENT.search(self.received, self._scanned)
            self._request_line_at = found.start() if found else None
        if self._request_line_at is not None and not self.complete:
            since = max(self._request_line_at, self._scanned - 3)  # a terminator split by the pieces
            self.complete = (
                self.received.find(b"\r\n\r\n", since) >= 0 or self.received.find(b"\n\n", since) >= 0
            )
        self._scanned = len(self.received)
        return self.complete

    @property
    def too_large(self) -> bool:
        return len(self.received) > MAX_HEADER_BYTES


@dataclass
class WaitingConnection:
    conn: TConn
    deadline: float
    block: HeaderBlock


def with_header_deadline(seconds: float) -> type[ThreadWorker]:
    """The worker class for a gunicorn config, with this header timeout."""
    return type("HeaderDeadlineWorker", (HeaderDeadlineWorker,), {"header_timeout": seconds})


class HeaderDeadlineWorker(ThreadWorker):
    header_timeout: float = 10.0

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Oldest first: every deadline is its arrival plus the same timeout, so the first
        # entry is both the longest waiting and the first to expire.
        self.waiting: OrderedDict[TConn, WaitingConnection] = OrderedDict()

    def enqueue_req(self, conn: TConn) -> None:
        """Every request (new connection, kept-alive one, read-ahead after a response) waits
        here for its headers before it gets a thread."""
        self.nr_conns -= 1  # counted again when it goes to a thread
        waiting = WaitingConnection(conn, time.monotonic() + self.header_timeout, HeaderBlock())
        if conn.parser is not None:  # what a kept-alive connection's parser read ahead
            waiting.block.add(conn.parser.unreader.take_buffered())
        if self._dispatch_if_complete(waiting):
            return
        conn.sock.setblocking(False)
        self.waiting[conn] = waiting
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_header_bytes, waiting))
        if len(self.waiting) > self.worker_connections:
            self._cut(next(iter(self.waiting.values())), "crowded", _REQUEST_TIMEOUT)

    def _on_header_bytes(self, waiting: WaitingConnection, _sock: socket.socket) -> None:
        try:
            chunk = waiting.conn.sock.recv(8192)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            chunk = b""
        if not chunk:  # the client went away
            self._forget(waiting)
            waiting.conn.close()
            return
        if waiting.block.add(chunk) or waiting.block.too_large:
            self._forget(waiting)
            self._dispatch_if_complete(waiting)

    def _dispatch_if_complete(self, waiting: WaitingConnection) -> bool:
        if waiting.block.too_large:
            SLOW_CLIENTS_CUT.labels("headers_too_large").inc()
            self._answer_and_close(waiting.conn, _HEADERS_TOO_LARGE)
            return True
        if not waiting.block.complete:
            return False
        conn = waiting.conn
        conn.data_ready = True  # no second wait for a first byte in the thread
        self.nr_conns += 1
        future = self.tpool.submit(self._handle_with, conn, bytes(waiting.block.received))
        future.add_done_callback(lambda done: self.method_queue.defer(self.finish_request, conn, done))
        return True

    def _handle_with(self, conn: TConn, received: bytes) -> Any:
        """gunicorn's handler, after putting back the bytes this worker read for it."""
        conn.sock.setblocking(True)
        conn.init()
        conn.parser.unreader.unread(received)
        return self.handle(conn)

    def murder_pending(self) -> None:
        super().murder_pending()
        now = time.monotonic()
        while self.waiting:
            oldest = next(iter(self.waiting.values()))
            if oldest.deadline > now:
                break
            self._cut(oldest, "header_timeout", _REQUEST_TIMEOUT)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        while force and self.waiting:  # the worker is stopping
            self._cut(next(iter(self.waiting.values())), "stopping", b"")

    def _cut(self, waiting: WaitingConnection, reason: str, answer: bytes) -> None:
        SLOW_CLIENTS_CUT.labels(reason).inc()
        self._forget(waiting)
        self._answer_and_close(waiting.conn, answer)

    def _forget(self, waiting: WaitingConnection) -> None:
        self.waiting.pop(waiting.conn, None)
        with contextlib.suppress(KeyError, ValueError, OSError):  # not registered, or closed
            self.poller.unregister(waiting.conn.sock)

    @staticmethod
    def _answer_and_close(conn: TConn, answer: bytes) -> None:
        """A short answer if the socket takes it at once (a slow client may not read), then
        the connection closed."""
        if answer:
            with contextlib.suppress(OSError):
                conn.sock.setblocking(False)
                conn.sock.send(answer)
        conn.close()
