"""A real SMTP server for tests (aiosmtpd) that records what it receives.

Every accepted message is kept, a resend as a second copy: `copies_by_recipient()` counts
them per address and `received` says on which client connection each arrived.

`replies` scripts answers to DATA ("451 4.3.0 try later", "550 5.1.1 no such user"),
one per message, before it goes back to 250. stop()/start() take it off the network
and bring it back on the same port.

`security="starttls"` offers STARTTLS and refuses mail before it; `security="tls"` speaks
TLS from the first byte. Both use a certificate for 127.0.0.1/localhost from a throwaway
CA (trustme) whose PEM is at `ca_file`. `logins={"user": "password"}` requires AUTH (PLAIN
or LOGIN, over TLS only); `sessions` records who logged in on each connection.
"""

from __future__ import annotations

import asyncio
import collections
import dataclasses
import email
import email.policy
import ssl
import tempfile
import threading
import time
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import trustme
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

from offload_testkit.processes import free_port


def unread_bytes(server_port: int, client_ports: set[int]) -> int:
    """Bytes the kernel holds, unread, on the server's IPv4 sockets from these client ports
    (the rx_queue column of /proc/net/tcp)."""
    total = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        remote_port = int(fields[2].rsplit(":", 1)[1], 16)
        if local_port == server_port and remote_port in client_ports:
            total += int(fields[4].split(":")[1], 16)
    return total


@dataclasses.dataclass(frozen=True)
class Received:
    """One accepted message: who it was for, its Message-ID, the client's port, when (monotonic)."""

    recipients: tuple[str, ...]
    message_id: str
    peer_port: int
    at: float


class SmtpSink:
    def __init__(
        self,
        port: int | None = None,
        delay: float = 0.0,
        security: str = "none",
        logins: dict[str, str] | None = None,
    ) -> None:
        if security not in ("none", "starttls", "tls"):
            raise ValueError(f"security must be none, starttls or tls, not {security!r}")
        self.port = port or free_port()
        self.delay = delay
        self.security = security
        self.logins = logins
        self.replies: collections.deque[str] = collections.deque()
        self.messages: list[EmailMessage] = []
        self.received: list[Received] = []
        self.logged_in: list[str] = []
        self.ca_file: str | None = None
        self._server_context: ssl.SSLContext | None = None
        if security != "none":
            self._server_context = self._make_certificate()
        self._lock = threading.Lock()
        self._controller: Controller | None = None
        self._pending: set[Received] = set()  # received in full, not yet committed
        self._serving = 0  # one more each start(): a mail begun before a stop is never committed

    def _make_certificate(self) -> ssl.SSLContext:
        authority = trustme.CA(organization_name="offload test CA")
        certificate = authority.issue_cert("127.0.0.1", "localhost")
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        certificate.configure_cert(context)
        self._folder = tempfile.TemporaryDirectory(prefix="offload-smtp-ca-")
        self.ca_file = str(Path(self._folder.name) / "ca.pem")
        authority.cert_pem.write_to_path(self.ca_file)
        return context

    def _authenticate(
        self, server: Any, session: Any, envelope: Any, mechanism: str, data: Any
    ) -> AuthResult:
        if isinstance(data, LoginPassword):
            user, password = data.login.decode(), data.password.decode()
            session.login_data = None  # aiosmtpd <2 warns on every login while it is set
            if self.logins and self.logins.get(user) == password:
                with self._lock:
                    self.logged_in.append(user)
                return AuthResult(success=True)
        return AuthResult(success=False, handled=False)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        if self.replies:
            if self.delay:
                await asyncio.sleep(self.delay)
            return self.replies.popleft()
        message = email.message_from_bytes(envelope.content, policy=email.policy.default)
        received = Received(
            tuple(address.lower() for address in envelope.rcpt_tos),
            str(message["Message-ID"]),
            int(session.peer[1]) if isinstance(session.peer, tuple) else 0,
            time.monotonic(),
        )
        # A slow server thinks, then commits the mail and answers at once. While it thinks
        # the mail is pending: it will be delivered even if the client is gone by then (a
        # killed client never hears the "250"), unless the server stops first.
        with self._lock:
            self._pending.add(received)
            serving = self._serving
        if self.delay:
            await asyncio.sleep(self.delay)  # a slow server, on purpose (other sessions go on)
        with self._lock:
            self._pending.discard(received)
            if self._serving != serving or self._controller is None:
                return "421 4.3.2 shutting down"  # stopped while thinking: nothing committed
            self.messages.append(message)
            self.received.append(received)
        return "250 2.0.0 OK"

    def drain(self, client_ports: set[int], timeout: float = 10.0) -> None:
        """Wait until the server has read and handled everything these clients sent: no
        bytes from them unread in the kernel, then two turns of the server's event loop
        (a whole DATA already read is handled in one turn, up to its `pending` entry). A
        frozen client's last mail may still sit in the socket when a busy machine looks."""
        deadline = time.monotonic() + timeout
        while unread_bytes(self.port, client_ports) > 0:
            if time.monotonic() > deadline:
                raise TimeoutError(f"the SMTP sink left bytes from {sorted(client_ports)} unread")
            time.sleep(0.01)
        controller = self._controller
        if controller is not None:
            for _ in range(2):
                asyncio.run_coroutine_threadsafe(asyncio.sleep(0), controller.loop).result(timeout)

    def start(self) -> SmtpSink:
        options: dict[str, Any] = {}
        if self.security == "starttls":
            options.update(tls_context=self._server_context, require_starttls=True)
        elif self.security == "tls":
            options.update(ssl_context=self._server_context)
        if self.logins is not None:
            # With STARTTLS, AUTH is only offered once the channel is encrypted. aiosmtpd only
            # recognises TLS begun by STARTTLS, so with implicit TLS (encrypted from the first
            # byte) its check has to be switched off for AUTH to be offered at all.
            options.update(
                authenticator=self._authenticate,
                auth_required=True,
                auth_require_tls=self.security != "tls",
            )
        with self._lock:
            self._serving += 1
        self._controller = Controller(self, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()
        return self

    def stop(self) -> None:
        if self._controller is not None:
            with self._lock:
                controller, self._controller = self._controller, None
            controller.stop()

    def by_header(self, name: str) -> dict[str, list[EmailMessage]]:
        grouped: dict[str, list[EmailMessage]] = collections.defaultdict(list)
        with self._lock:
            for message in self.messages:
                grouped[str(message[name])].append(message)
        return grouped

    def copies_by_recipient(self) -> collections.Counter[str]:
        """How many copies each address received (every copy is kept)."""
        with self._lock:
            return collections.Counter(r for received in self.received for r in received.recipients)

    def snapshot(self) -> list[Received]:
        with self._lock:
            return list(self.received)

    def pending(self) -> list[Received]:
        """Mails received in full that the server has not yet committed (see `delay`)."""
        with self._lock:
            return list(self._pending)

    def count(self) -> int:
        with self._lock:
            return len(self.messages)
