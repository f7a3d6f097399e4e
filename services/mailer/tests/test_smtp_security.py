"""STARTTLS, implicit TLS and SMTP AUTH against a real SMTP server (aiosmtpd) whose certificate
comes from a throwaway CA (trustme), with the mailer as a real process and a real broker."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from offload_core.config import ConfigError
from offload_core.headers import PARK_REASON_HEADER
from offload_mailer.config import MailerConfig
from offload_testkit.amqp import take, wait_for
from offload_testkit.messages import signup
from offload_testkit.smtp import SmtpSink

# Characters that break naive URL- or header-based credential handling.
PASSWORD = "p@ss:w/rd#%"


@pytest.fixture
def secure_sink() -> Iterator[Callable[..., SmtpSink]]:
    started: list[SmtpSink] = []

    def start(security: str, logins: dict[str, str] | None = None) -> SmtpSink:
        sink = SmtpSink(security=security, logins=logins).start()
        started.append(sink)
        return sink

    yield start
    for sink in started:
        sink.stop()


def mailer_env(sink: SmtpSink, security: str, tmp_path, password: str | None = PASSWORD, **extra: str):
    env = {
        "OFFLOAD_SMTP_PORT": str(sink.port),
        "OFFLOAD_SMTP_SECURITY": security,
        "OFFLOAD_SMTP_CA_FILE": sink.ca_file or "",
        "OFFLOAD_MAX_ATTEMPTS": "3",
    }
    if password is not None:
        secret = tmp_path / "smtp-password"
        secret.write_text(password + "\n")  # a mounted Secret often ends with a newline
        env |= {"OFFLOAD_SMTP_USERNAME": "mailer", "OFFLOAD_SMTP_PASSWORD_FILE": str(secret)}
    return env | extra


@pytest.mark.parametrize("security", ["starttls", "tls"])
def test_sends_over_tls_with_login(security, secure_sink, mailers, stack_publisher, tmp_path):
    sink = secure_sink(security, logins={"mailer": PASSWORD})
    mailers.start(**mailer_env(sink, security, tmp_path, OFFLOAD_WORKER_THREADS="1"))
    envelopes = [signup() for _ in range(3)]
    for envelope in envelopes:
        stack_publisher.publish(envelope)
    wait_for(lambda: sink.count() == 3, timeout=20, what="three emails over TLS")
    assert set(sink.by_header("Message-ID")) == {f"<signup-{e.id}@offload.localhost>" for e in envelopes}
    # One worker thread, one login: the authenticated connection is reused.
    assert sink.logged_in == ["mailer"]


def test_wrong_password_retries_then_parks_with_the_reason(
    secure_sink, mailers, stack_publisher, amqp_url, tmp_path
):
    sink = secure_sink("starttls", logins={"mailer": PASSWORD})
    process = mailers.start(**mailer_env(sink, "starttls", tmp_path, password="wrong"))
    envelope = signup()
    stack_publisher.publish(envelope)
    [parked] = take(amqp_url, "mailer.signups.high.parked", expect=1, timeout=20)
    assert parked.properties.message_id == envelope.id
    reason = parked.headers[PARK_REASON_HEADER]
    assert "login" in reason and "535" in reason
    assert sink.count() == 0 and sink.logged_in == []
    assert "smtp login refused" in process.logs()


def test_an_untrusted_certificate_is_refused(secure_sink, mailers, stack_publisher, amqp_url, tmp_path):
    sink = secure_sink("tls")
    env = mailer_env(sink, "tls", tmp_path, password=None, OFFLOAD_SMTP_CA_FILE="")
    mailers.start(**env)  # the system trust store does not know the test CA
    stack_publisher.publish(signup())
    [parked] = take(amqp_url, "mailer.signups.high.parked", expect=1, timeout=20)
    assert "certificate verify failed" in parked.headers[PARK_REASON_HEADER]
    assert sink.count() == 0


def test_starttls_required_but_not_offered_sends_nothing_in_clear(
    mailers, smtp_sink, stack_publisher, amqp_url
):
    # smtp_sink is a plain server: no STARTTLS in its EHLO answer.
    mailers.start(OFFLOAD_SMTP_SECURITY="starttls", OFFLOAD_MAX_ATTEMPTS="2")
    stack_publisher.publish(signup())
    [parked] = take(amqp_url, "mailer.signups.high.parked", expect=1, timeout=20)
    assert "STARTTLS" in parked.headers[PARK_REASON_HEADER]
    assert smtp_sink.count() == 0


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"OFFLOAD_SMTP_USERNAME": "mailer"}, "would send the password in clear text"),
        (
            {"OFFLOAD_SMTP_SECURITY": "tls", "OFFLOAD_SMTP_CA_FILE": "/nonexistent/ca.pem"},
            "OFFLOAD_SMTP_CA_FILE must be a readable file, not '/nonexistent/ca.pem'",
        ),
        ({"OFFLOAD_SMTP_SECURITY": "ssl"}, "must be one of none, starttls, tls"),
    ],
)
def test_unsafe_or_broken_tls_settings_are_refused_at_start(env, message):
    with pytest.raises(ConfigError, match=message):
        MailerConfig.from_env(env)
