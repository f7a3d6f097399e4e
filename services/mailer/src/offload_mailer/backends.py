"""Where emails go: an SMTP server (one reused connection per worker thread) or an outbox folder."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import smtplib
import ssl
import tempfile
import threading
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol

from offload_mailer.addresses import without_addresses
from offload_mailer.config import MailerConfig

log = logging.getLogger("offload.mailer.smtp")


class TransientMailError(Exception):
    """Worth trying again later: connection trouble, SMTP 4xx."""


class PermanentMailError(Exception):
    """Will never work: SMTP 5xx."""


class MailBackend(Protocol):
    def send(self, message: EmailMessage) -> None: ...

    def close(self) -> None: ...


def _classify(code: int, text: bytes | str, what: str) -> Exception:
    reply = without_addresses(text.decode(errors="replace") if isinstance(text, bytes) else str(text))
    error = f"SMTP {code} {reply} ({what})"
    return PermanentMailError(error) if 500 <= code < 600 else TransientMailError(error)


class SmtpBackend:
    def __init__(self, config: MailerConfig) -> None:
        self.config = config
        self._local = threading.local()
        self._all: list[smtplib.SMTP] = []
        self._lock = threading.Lock()

    def _open(self) -> smtplib.SMTP:
        c = self.config
        context = ssl.create_default_context(cafile=c.smtp_ca_file)
        if c.smtp_security == "tls":
            connection: smtplib.SMTP = smtplib.SMTP_SSL(
                c.smtp_host, c.smtp_port, local_hostname=c.helo_name, timeout=c.smtp_timeout, context=context
            )
        else:
            connection = smtplib.SMTP(
                c.smtp_host, c.smtp_port, local_hostname=c.helo_name, timeout=c.smtp_timeout
            )
            if c.smtp_security == "starttls":
                connection.starttls(context=context)
        if c.smtp_username:
            connection.login(c.smtp_username, c.smtp_password or "")
        with self._lock:
            self._all.append(connection)
        log.info("smtp connection opened", extra={"fields": {"host": c.smtp_host, "port": c.smtp_port}})
        return connection

    def _drop(self) -> None:
        connection = getattr(self._local, "connection", None)
        self._local.connection = None
        if connection is not None:
            with self._lock:
                if connection in self._all:
                    self._all.remove(connection)
            with contextlib.suppress(Exception):
                connection.close()

    def _connection(self) -> smtplib.SMTP:
        connection = getattr(self._local, "connection", None)
        if connection is None:
            try:
                connection = self._open()
            except smtplib.SMTPAuthenticationError as exc:
                # Wrong credentials are the relay's or the operator's problem, not the message's:
                # retry through the delay tiers (and park only after max attempts) instead of
                # parking every signup at once.
                log.error(
                    "smtp login refused",
                    extra={"fields": {"host": self.config.smtp_host, "code": exc.smtp_code}},
                )
                raise TransientMailError(
                    f"SMTP login as {self.config.smtp_username!r} refused: {exc.smtp_code} "
                    f"{_text(exc.smtp_error)}"
                ) from exc
            except smtplib.SMTPResponseException as exc:
                raise _classify(exc.smtp_code, exc.smtp_error, "connect") from exc
            except ssl.SSLError as exc:
                log.error(
                    "smtp tls failed", extra={"fields": {"host": self.config.smtp_host, "error": str(exc)}}
                )
                raise TransientMailError(
                    f"TLS with {self.config.smtp_host}:{self.config.smtp_port} failed: {exc}"
                ) from exc
            except (OSError, smtplib.SMTPException) as exc:
                raise TransientMailError(
                    f"cannot connect to {self.config.smtp_host}:{self.config.smtp_port}: {exc}"
                ) from exc
            self._local.connection = connection
        return connection

    def send(self, message: EmailMessage) -> None:
        # A reused connection may have been closed by the server while idle: that shows up
        # before any mail is handed over, so one fresh connection and one more try is safe.
        for attempt in (1, 2):
            connection = self._connection()
            try:
                refused = connection.send_message(message)
            except smtplib.SMTPServerDisconnected as exc:
                self._drop()
                if attempt == 2:
                    raise TransientMailError(f"SMTP server disconnected: {exc}") from exc
                continue
            except smtplib.SMTPRecipientsRefused as exc:
                self._reset_after_error(connection)
                code, text = next(iter(exc.recipients.values()))
                raise _classify(code, text, "recipient refused") from exc
            except smtplib.SMTPResponseException as exc:
                self._reset_after_error(connection)
                raise _classify(exc.smtp_code, exc.smtp_error, "send") from exc
            except (OSError, smtplib.SMTPException) as exc:
                self._drop()
                raise TransientMailError(f"SMTP send failed: {exc}") from exc
            if refused:
                code, text = next(iter(refused.values()))
                raise _classify(code, text, "recipient refused")
            return

    def _reset_after_error(self, connection: smtplib.SMTP) -> None:
        try:
            connection.rset()
        except Exception:
            self._drop()

    def close(self) -> None:
        with self._lock:
            connections, self._all = self._all, []
        for connection in connections:
            with contextlib.suppress(Exception):
                connection.quit()


class FileBackend:
    """Writes <Message-ID>.eml into a folder: the embedded default for `make dev`.

    A second send of the same Message-ID never replaces the first: it is kept next to it as
    <Message-ID>.2.eml (then .3, ...), and logged, so a duplicate is as visible here as in a
    real mailbox."""

    def __init__(self, outbox: str) -> None:
        self.outbox = Path(outbox)
        self.outbox.mkdir(parents=True, exist_ok=True)

    def send(self, message: EmailMessage) -> None:
        stem = str(message["Message-ID"]).strip("<>").replace("/", "_")
        # Write, then link under the final name: a reader never sees half a file, and a link
        # fails instead of replacing a file already there (a rename would replace it).
        with tempfile.NamedTemporaryFile("wb", dir=self.outbox, delete=False, suffix=".tmp") as handle:
            handle.write(message.as_bytes())
            temporary = Path(handle.name)
        try:
            for copy in itertools.count(1):
                name = f"{stem}.eml" if copy == 1 else f"{stem}.{copy}.eml"
                try:
                    os.link(temporary, self.outbox / name)
                except FileExistsError:
                    continue
                if copy > 1:
                    log.warning(
                        "email written again for the same Message-ID",
                        extra={"fields": {"message_id": stem, "copy": copy}},
                    )
                return
        finally:
            temporary.unlink()

    def close(self) -> None:
        pass


def make_backend(config: MailerConfig) -> MailBackend:
    return SmtpBackend(config) if config.backend == "smtp" else FileBackend(config.outbox_dir)


def _text(reply: bytes | str) -> str:
    return reply.decode(errors="replace") if isinstance(reply, bytes) else reply
