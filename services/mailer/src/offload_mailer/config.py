"""Mailer settings from environment variables; the defaults run on one machine (`make dev`)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from offload_core.settings import ConfigError, from_env, parse_store_url, setting
from offload_core.topology import MAILER_QUEUE_BY_LANE

LANES = tuple(MAILER_QUEUE_BY_LANE)


def _readable_file(raw: str) -> str:
    """the path of a readable file"""
    if not Path(raw).is_file():
        raise ValueError("must be a readable file")
    return raw


@dataclass(frozen=True)
class MailerConfig:
    lanes: tuple[str, ...] = setting("OFFLOAD_MAILER_LANES", LANES, choices=LANES)
    backend: str = setting("OFFLOAD_MAILER_BACKEND", "file", choices=("file", "smtp"), parse=str.lower)
    outbox_dir: str = setting("OFFLOAD_MAILER_OUTBOX", ".state/outbox")
    smtp_host: str = setting("OFFLOAD_SMTP_HOST", "127.0.0.1")
    smtp_port: int = setting("OFFLOAD_SMTP_PORT", 25, minimum=1)
    smtp_security: str = setting(
        "OFFLOAD_SMTP_SECURITY", "none", choices=("none", "starttls", "tls"), parse=str.lower
    )
    smtp_username: str | None = setting("OFFLOAD_SMTP_USERNAME", None)
    smtp_password: str | None = setting("OFFLOAD_SMTP_PASSWORD", None, secret=True)
    # PEM bundle to verify the server's certificate with, for relays signed by a private CA;
    # unset: the system's trust store. Verification is never switched off.
    smtp_ca_file: str | None = setting("OFFLOAD_SMTP_CA_FILE", None, parse=_readable_file)
    smtp_timeout: float = setting("OFFLOAD_SMTP_TIMEOUT", 10.0, minimum=0.1)
    mail_from: str = setting("OFFLOAD_MAIL_FROM", "Fruit news <welcome@offload.localhost>")
    message_id_domain: str = setting("OFFLOAD_MESSAGE_ID_DOMAIN", "offload.localhost")
    # EHLO name. smtplib would otherwise look up socket.getfqdn() on every connection,
    # a DNS round trip per reconnect.
    helo_name: str = setting("OFFLOAD_SMTP_HELO", default_factory=socket.gethostname)
    # sqlite:///path/to/sent.db (default) or redis://host:port/db
    store_url: str = setting(
        "OFFLOAD_MAILER_STORE_URL", "sqlite:///.state/mailer-sent.db", parse=parse_store_url
    )
    status_port: int = setting("OFFLOAD_MAILER_STATUS_PORT", 9101, minimum=0)  # 0: any free port
    # Emails per second this process may send (the relay's quota divided among replicas);
    # 0: no ceiling.
    max_send_rate: float = setting("OFFLOAD_MAILER_MAX_SEND_RATE", 0.0, minimum=0)
    # One welcome per address for this many days: later signups for it are settled without
    # a mail (counted as suppressed). A year: someone who signs up again within it is the
    # same subscriber, and an address unused that long may have changed hands. The store
    # keeps one key per address welcomed in the period. 0: a welcome for every signup.
    welcome_once_days: float = setting("OFFLOAD_MAILER_WELCOME_ONCE_DAYS", 365.0, minimum=0)

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(MAILER_QUEUE_BY_LANE[lane] for lane in self.lanes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MailerConfig:
        config = from_env(cls, os.environ if env is None else env)
        if config.smtp_username and config.smtp_security == "none":
            raise ConfigError(
                "OFFLOAD_SMTP_USERNAME is set but OFFLOAD_SMTP_SECURITY=none would send the password "
                "in clear text: set OFFLOAD_SMTP_SECURITY to starttls or tls"
            )
        return config
