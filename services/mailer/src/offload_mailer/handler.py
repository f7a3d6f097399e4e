"""The mailer's handler: one welcome email per signup, then a mail.sent or mail.failed event."""

from __future__ import annotations

import logging

from prometheus_client import Counter

from offload_core.envelope import Envelope
from offload_core.publisher import Publisher
from offload_core.runner import Message, Park, Retry
from offload_mailer.backends import MailBackend, PermanentMailError, TransientMailError
from offload_mailer.compose import TemplateProblem, compose
from offload_mailer.config import MailerConfig
from offload_mailer.store import SentStore

log = logging.getLogger("offload.mailer")

EMAILS = Counter(
    "offload_mailer_emails_total",
    "Welcome emails by outcome: sent, duplicate_skipped, retried, failed.",
    ["outcome"],
)


class WelcomeMailer:
    def __init__(
        self,
        config: MailerConfig,
        backend: MailBackend,
        store: SentStore,
        publisher: Publisher,
        *,
        max_attempts: int,
    ) -> None:
        self.config = config
        self.backend = backend
        self.store = store
        self.publisher = publisher
        self.max_attempts = max_attempts
        for outcome in ("sent", "duplicate_skipped", "retried", "failed"):
            EMAILS.labels(outcome)  # at 0 from the start, so rate() sees the first of each

    def handle(self, message: Message) -> None:
        signup_id = message.id
        if self.store.was_sent(signup_id):
            # A redelivery of a signup whose email went out: do not send again, but make sure
            # the mail.sent event exists (its id is derived, so stats counts it once).
            EMAILS.labels("duplicate_skipped").inc()
            log.info("already sent, skipping", extra={"fields": {"signup_id": signup_id}})
            self._announce("mail.sent", message, {"signup_id": signup_id, "fruit": message.data["fruit"]})
            return
        try:
            email = compose(
                signup_id,
                message.data,
                mail_from=self.config.mail_from,
                domain=self.config.message_id_domain,
                occurred_at=message.envelope.occurred_at,
            )
            self.backend.send(email)
        except (TemplateProblem, PermanentMailError) as exc:
            self._give_up(message, str(exc))
        except TransientMailError as exc:
            if message.attempt >= self.max_attempts:
                self._give_up(message, f"gave up after {message.attempt} attempts: {exc}")
            EMAILS.labels("retried").inc()
            raise Retry(str(exc)) from exc
        # The duplicate window: a crash between the server's acceptance above and this write.
        self.store.mark_sent(signup_id)
        EMAILS.labels("sent").inc()
        self._announce(
            "mail.sent",
            message,
            {"signup_id": signup_id, "fruit": message.data["fruit"], "attempt": message.attempt},
        )

    def _give_up(self, message: Message, reason: str) -> None:
        EMAILS.labels("failed").inc()
        data = {"signup_id": message.id, "fruit": message.data["fruit"], "reason": reason[:1000]}
        self._announce("mail.failed", message, data)
        raise Park(reason)

    def _announce(self, event_type: str, message: Message, data: dict) -> None:
        # Deterministic id: a repeated announcement is the same event, de-duplicated downstream.
        event = Envelope(event_type, data, id=f"{event_type}-{message.id}")
        self.publisher.publish(event, correlation_id=message.correlation_id)
