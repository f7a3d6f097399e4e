"""Mailer settings from environment variables; the defaults run on one machine (`make dev`)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from offload_core.config import ConfigError, env_integer, env_number

LANES = ("high", "low")


def _secret(env: Mapping[str, str], name: str) -> str | None:
    """A value from NAME, or from the file named by NAME_FILE (Kubernetes secret mounts)."""
    path = env.get(f"{name}_FILE", "").strip()
    if path:
        try:
            return Path(path).read_text().strip()
        except OSError as exc:
            raise ConfigError(f"{name}_FILE={path!r} cannot be read: {exc.strerror}") from None
    return env.get(name) or None


@dataclass(frozen=True)
class MailerConfig:
    lanes: tuple[str, ...] = LANES
    backend: str = "file"  # file | smtp
    outbox_dir: str = ".state/outbox"
    smtp_host: str = "127.0.0.1"
    smtp_port: int = 25
    smtp_security: str = "none"  # none | starttls | tls
    smtp_username: str | None = None
    smtp_password: str | None = None
    # PEM bundle to verify the server's certificate with, for relays signed by a private CA;
    # unset: the system's trust store. Verification is never switched off.
    smtp_ca_file: str | None = None
    smtp_timeout: float = 10.0
    mail_from: str = "Fruit news <welcome@offload.localhost>"
    message_id_domain: str = "offload.localhost"
    # sqlite:///path/to/sent.db (default) or redis://host:port/db
    # EHLO name. smtplib would otherwise look up socket.getfqdn() on every connection,
    # a DNS round trip per reconnect.
    helo_name: str = field(default_factory=socket.gethostname)
    store_url: str = "sqlite:///.state/mailer-sent.db"
    status_port: int = 9101
    # Emails per second this process may send (the relay's quota divided among replicas);
    # 0: no ceiling.
    max_send_rate: float = 0.0

    @property
    def queues(self) -> tuple[str, ...]:
        return tuple(f"mailer.signups.{lane}" for lane in self.lanes)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> MailerConfig:
        env = os.environ if env is None else env
        d = cls()
        lanes = tuple(
            x.strip() for x in env.get("OFFLOAD_MAILER_LANES", ",".join(d.lanes)).split(",") if x.strip()
        )
        unknown = sorted(set(lanes) - set(LANES))
        if unknown or not lanes:
            raise ConfigError(
                f"OFFLOAD_MAILER_LANES must list lanes among {', '.join(LANES)}, got {unknown or lanes}"
            )
        backend = env.get("OFFLOAD_MAILER_BACKEND", d.backend).strip().lower()
        if backend not in ("file", "smtp"):
            raise ConfigError(f"OFFLOAD_MAILER_BACKEND={backend!r} must be file or smtp")
        security = env.get("OFFLOAD_SMTP_SECURITY", d.smtp_security).strip().lower()
        if security not in ("none", "starttls", "tls"):
            raise ConfigError(f"OFFLOAD_SMTP_SECURITY={security!r} must be none, starttls or tls")
        port = env_integer(env, "OFFLOAD_SMTP_PORT", d.smtp_port, minimum=1)
        status_port = env_integer(
            env, "OFFLOAD_MAILER_STATUS_PORT", d.status_port, minimum=0
        )  # 0: any free port
        username = env.get("OFFLOAD_SMTP_USERNAME") or None
        if username and security == "none":
            raise ConfigError(
                "OFFLOAD_SMTP_USERNAME is set but OFFLOAD_SMTP_SECURITY=none would send the password "
                "in clear text: set OFFLOAD_SMTP_SECURITY to starttls or tls"
            )
        ca_file = env.get("OFFLOAD_SMTP_CA_FILE", "").strip() or None
        if ca_file and not Path(ca_file).is_file():
            raise ConfigError(f"OFFLOAD_SMTP_CA_FILE={ca_file!r} is not a readable file")
        timeout = env_number(env, "OFFLOAD_SMTP_TIMEOUT", d.smtp_timeout, minimum=0.1)
        max_send_rate = env_number(env, "OFFLOAD_MAILER_MAX_SEND_RATE", d.max_send_rate, minimum=0)
        store_url = env.get("OFFLOAD_MAILER_STORE_URL", d.store_url).strip()
        if not store_url.startswith(("sqlite:///", "redis://", "rediss://")):
            raise ConfigError(
                f"OFFLOAD_MAILER_STORE_URL={store_url!r} must start with sqlite:/// or redis://"
            )
        return cls(
            lanes=lanes,
            backend=backend,
            outbox_dir=env.get("OFFLOAD_MAILER_OUTBOX", d.outbox_dir),
            smtp_host=env.get("OFFLOAD_SMTP_HOST", d.smtp_host),
            smtp_port=port,
            smtp_security=security,
            smtp_username=username,
            smtp_password=_secret(env, "OFFLOAD_SMTP_PASSWORD"),
            smtp_ca_file=ca_file,
            smtp_timeout=timeout,
            mail_from=env.get("OFFLOAD_MAIL_FROM", d.mail_from),
            message_id_domain=env.get("OFFLOAD_MESSAGE_ID_DOMAIN", d.message_id_domain),
            helo_name=env.get("OFFLOAD_SMTP_HELO", d.helo_name),
            store_url=store_url,
            status_port=status_port,
            max_send_rate=max_send_rate,
        )
