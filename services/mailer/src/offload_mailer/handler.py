"""The mailer's handler: one welcome email per address, then a mail.sent or mail.failed event
(or mail.suppressed for a later signup of an address already welcomed)."""

from __future__ import annotations

import logging
import os
import threading
import time

from prometheus_client import Counter

from offload_core import tracing
from offload_core.envelope import Envelope, derived_id
from offload_core.publisher import Publisher
from offload_core.runner import Message, Park, Retry
from offload_mailer.addresses import welcome_key
from offload_mailer.backends import MailBackend, PermanentMailError, TransientMailError
from offload_mailer.compose import TemplateProblem, compose
from offload_mailer.config import MailerConfig
from offload_mailer.pacing import SendPacer
from offload_mailer.store import SentStore

log = logging.getLogger("offload.mailer")

EMAILS = Counter(
    "offload_mailer_emails_total",
    "Welcome emails by outcome: sent, duplicate_skipped, suppressed, retried, failed.",
    ["outcome"],
)


# The mail.sent this mailer publishes; stats reads this version and the one before.
MAIL_SENT_VERSION = 2

# How long a worker waits on a twin's claim before handing the message back for later.
CLAIM_WAIT_SECONDS = 2.0


class WelcomeMailer:
    def __init__(
        self,
        config: MailerConfig,
        backend: MailBackend,
        store: SentStore,
        publisher: Publisher,
    ) -> None:
        self.config = config
        self.backend = backend
        self.store = store
        self.publisher = publisher
        # Longer than one send can take (connect + TLS + DATA, each bounded by the SMTP
        # timeout); a claim left by a crashed worker frees itself after this, so the
        # redelivered signup is retried through the delay tiers until then.
        self.claim_seconds = 3 * config.smtp_timeout + 5
        self.pacer = SendPacer(config.max_send_rate)
        self.welcome_once_seconds = config.welcome_once_days * 24 * 3600
        for outcome in ("sent", "duplicate_skipped", "suppressed", "retried", "failed"):
            EMAILS.labels(outcome)  # at 0 from the start, so rate() sees the first of each

    def handle(self, message: Message) -> None:
        if message.envelope.type != "signup.created":
            # A valid event of another kind routed here is a wiring mistake: no retry helps.
            raise Park(f"the mailer handles signup.created, not {message.envelope.type}")
        signup_id = message.id
        if self.store.was_sent(signup_id):
            self._skip_as_sent(message)
            return
        address = welcome_key(message.data["email"]) if self.welcome_once_seconds else None
        if address is not None:
            holder = self.store.claim_address(address, signup_id, self.welcome_once_seconds)
            if holder != signup_id:
                self._suppress(message, holder)
                return
        try:
            self._send_once(message)
        except Park:
            # Failed for good: the address is free again for a later signup to try.
            if address is not None:
                self.store.release_address(address, signup_id)
            raise

    def _send_once(self, message: Message) -> None:
        """Send this signup's mail unless another copy of it already did (the signup claim)."""
        signup_id = message.id
        # Paced before the claim, so that the claim's lifetime covers the send alone.
        self.pacer.wait()
        owner = f"{os.getpid()}-{threading.get_ident()}"
        if not self._claim(signup_id, owner):
            EMAILS.labels("retried").inc()
            raise Retry("another worker still holds the claim on this signup")
        if self.store.was_sent(signup_id):  # the other copy went out while we waited
            self.store.release(signup_id, owner)
            self._skip_as_sent(message)
            return
        try:
            email = compose(
                signup_id,
                message.data,
                mail_from=self.config.mail_from,
                domain=self.config.message_id_domain,
                occurred_at=message.envelope.occurred_at,
            )
            with tracing.span("send mail", **{"offload.mail.backend": self.config.backend}):
                self.backend.send(email)
        except (TemplateProblem, PermanentMailError) as exc:
            self.store.release(signup_id, owner)
            self._give_up(message, str(exc))
        except TransientMailError as exc:
            self.store.release(signup_id, owner)
            if message.is_last_attempt:
                self._give_up(message, f"gave up after {message.attempt} attempts: {exc}")
            EMAILS.labels("retried").inc()
            raise Retry(str(exc)) from exc
        # The duplicate window: a crash between the server's acceptance above and this write.
        self.store.mark_sent(signup_id)
        EMAILS.labels("sent").inc()
        self._announce_sent(message, attempt=message.attempt)

    def _skip_as_sent(self, message: Message) -> None:
        # A redelivery of a signup whose email went out: do not send again, but make sure
        # the mail.sent event exists (its id is derived, so stats counts it once).
        EMAILS.labels("duplicate_skipped").inc()
        log.info("already sent, skipping", extra={"fields": {"signup_id": message.id}})
        self._announce_sent(message)

    def _announce_sent(self, message: Message, *, attempt: int | None = None) -> None:
        # Version 2 carries when the signup was accepted (its signup.created's time), so
        # stats can show the time from signup to welcome email.
        data = {
            "signup_id": message.id,
            "fruit": message.data["fruit"],
            "accepted_at": message.envelope.occurred_at,
        }
        if attempt is not None:
            data["attempt"] = attempt
        self._announce("mail.sent", message, data, version=MAIL_SENT_VERSION)

    def _suppress(self, message: Message, holder: str) -> None:
        # Another signup holds the address: welcomed already, or being welcomed now (and if
        # that send fails for good, the address is free for the next signup).
        EMAILS.labels("suppressed").inc()
        log.info(
            "address already welcomed, no mail",
            extra={"fields": {"signup_id": message.id, "welcomed_by": holder}},
        )
        self._announce("mail.suppressed", message, {"signup_id": message.id, "welcomed_by": holder})

    def _claim(self, signup_id: str, owner: str) -> bool:
        """Claim the signup. While another copy holds it, wait briefly for that send to finish
        (True: the caller then finds it sent); if it takes longer, or the holder crashed and
        its claim has yet to expire, False: the message comes back after a delay tier instead
        of holding this worker thread."""
        deadline = time.monotonic() + min(self.claim_seconds, CLAIM_WAIT_SECONDS)
        waiting = False
        while not self.store.claim(signup_id, owner, self.claim_seconds):
            if self.store.was_sent(signup_id):
                return True
            if time.monotonic() > deadline:
                return False
            if not waiting:
                log.info("another worker is sending this signup", extra={"fields": {"signup_id": signup_id}})
                waiting = True
            time.sleep(0.1)
        return True

    def _give_up(self, message: Message, reason: str) -> None:
        EMAILS.labels("failed").inc()
        data = {"signup_id": message.id, "fruit": message.data["fruit"], "reason": reason[:1000]}
        self._announce("mail.failed", message, data)
        raise Park(reason)

    def _announce(self, event_type: str, message: Message, data: dict, *, version: int = 1) -> None:
        # Deterministic id: a repeated announcement is the same event, de-duplicated downstream.
        event = Envelope(event_type, data, version=version, id=derived_id(event_type, message.id))
        self.publisher.publish(event, correlation_id=message.correlation_id)
