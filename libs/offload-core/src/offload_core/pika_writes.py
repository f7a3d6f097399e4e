"""One send() for all the frames pika has buffered on a connection, instead of one per frame.

pika's plaintext transport (`_AsyncTransportBase._produce`, pika 1.4) sends its buffered
chunks one call at a time, and every message is at least three frames (method, header,
body): a pipelined run of 100 publishes is 300 send() calls, and 100 acks are 100. Where a
system call is dear (a sandboxed runtime: 10–15 µs each on the benchmark machine) that is
most of a confirmed publish's CPU. `_produce` below joins what is buffered first and sends
it with one call, or a few when the socket's buffer fills: the same bytes in the same order.
Partial sends and would-block are handled as pika handles them (its caller,
`_on_socket_writable`, treats EAGAIN and errors). pika offers no setting for this, so the
method is replaced process-wide, and only when `OFFLOAD_FEWER_SYSCALLS` asks for it
(`fewer_syscalls`). TLS connections keep pika's own loop (`_AsyncSSLTransport._produce`).
`install` refuses a pika whose transport does not have the method this replaces.
"""

from __future__ import annotations

from typing import Any

from pika.adapters.utils import io_services_utils

_TRANSPORT = io_services_utils._AsyncPlaintextTransport  # the class pika uses for plain TCP
PIKA_PRODUCE = io_services_utils._AsyncTransportBase._produce


def _produce_joined(self: Any) -> None:
    buffers = self._tx_buffers
    while buffers:
        if len(buffers) > 1:
            joined = b"".join(buffers)
            buffers.clear()
            buffers.append(joined)
        sent = self._sigint_safe_send(self._sock, buffers[0])
        chunk = buffers.popleft()
        if sent < len(chunk):
            buffers.appendleft(chunk[sent:])
        self._tx_buffered_byte_count -= sent


def install() -> None:
    """Send each connection's buffered frames with one call (idempotent)."""
    if _TRANSPORT._produce not in (PIKA_PRODUCE, _produce_joined):
        raise RuntimeError("pika's plaintext transport changed: offload_core.pika_writes needs review")
    _TRANSPORT._produce = _produce_joined


def uninstall() -> None:
    """pika's own one-send-per-frame loop, as pika ships it."""
    _TRANSPORT._produce = PIKA_PRODUCE


def installed() -> bool:
    return _TRANSPORT._produce is _produce_joined
