"""The mailer's duplicate window, read from outside: which mails a frozen mailer process had
handed to the SMTP server without recording them in its sent-store (RedisSentStore).

Each worker thread of a mailer keeps one SMTP connection and sends one mail at a time, so
at any instant a thread is inside the window only with the last mail its connection
carried. Freeze the process (SIGSTOP) first: then nothing moves while this looks.
"""

from __future__ import annotations

import psutil
import redis

from offload_testkit.smtp import SmtpSink

SENT_KEY_PREFIX = "offload:mailer:sent:"  # RedisSentStore's default prefix


def signup_id(message_id: str) -> str:
    """`<signup-ID@domain>` -> ID (the mailer derives the Message-ID from the signup id)."""
    return message_id.strip("<>").removeprefix("signup-").split("@", 1)[0]


def smtp_ports(pid: int, smtp_port: int) -> set[int]:
    """The local ports of `pid`'s connections to the SMTP server."""
    connections = psutil.Process(pid).net_connections(kind="tcp")
    return {c.laddr.port for c in connections if c.raddr and c.raddr.port == smtp_port}


def recorded(store: redis.Redis, signup_ids: set[str]) -> set[str]:
    """Which of these signups the sent-store holds."""
    ids = sorted(signup_ids)
    pipe = store.pipeline()
    for i in ids:
        pipe.exists(SENT_KEY_PREFIX + i)
    return {i for i, found in zip(ids, pipe.execute(), strict=True) if found}


def in_window(pid: int, sink: SmtpSink, store: redis.Redis) -> frozenset[str]:
    """Addresses of the frozen mailer's mails that the server has (committed, or received
    and about to be) and the store does not."""
    ports = smtp_ports(pid, sink.port)
    sink.drain(ports)  # its last mail may still be on its way into the server
    last: dict[int, tuple[str, str]] = {}
    for received in sink.snapshot():
        if received.peer_port in ports:
            last[received.peer_port] = (signup_id(received.message_id), received.recipients[0])
    candidates = list(last.values()) + [
        (signup_id(r.message_id), r.recipients[0]) for r in sink.pending() if r.peer_port in ports
    ]
    sent = recorded(store, {i for i, _ in candidates})
    return frozenset(address for i, address in candidates if i not in sent)
