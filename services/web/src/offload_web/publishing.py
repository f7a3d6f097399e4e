"""Signups onto the broker: accepted only once RabbitMQ confirmed them.

The web's Flask extension (`init_app`, as Flask's own extensions do): it owns the
process's publisher, which gunicorn's worker_exit hook closes.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future

from flask import Flask, current_app, g

from offload_core.config import CoreConfig
from offload_core.envelope import Envelope
from offload_core.publisher import Publisher, PublishError, PublishTimeout
from offload_web import idempotency
from offload_web.signups import Signup

log = logging.getLogger("offload.web")

EXTENSION = "offload_publisher"


class BrokerUnavailable(Exception):
    """Not every signup was confirmed. `accepted`: confirmed ids; `uncertain`: written to the
    broker but unconfirmed, so they may still take effect (a retry with the same
    Idempotency-Key maps to the same ids). Every other id was withdrawn, never sent."""

    def __init__(self, cause: Exception, accepted: list[str], uncertain: list[str]) -> None:
        super().__init__(str(cause))
        self.accepted = accepted
        self.uncertain = uncertain


class SignupPublisher:
    def __init__(self, publisher: Publisher, core_config: CoreConfig, *, enabled: bool = True) -> None:
        self.publisher = publisher
        self.confirm_timeout = core_config.confirm_timeout
        # Off only for benchmarks: the request path without the broker round trip.
        self.enabled = enabled

    def init_app(self, app: Flask) -> None:
        app.extensions[EXTENSION] = self.publisher
        app.extensions["offload_signups"] = self

    def publish(self, signups: list[Signup], lane: str, key: str | None) -> list[str]:
        """Publish every signup, pipelined, and wait for all confirms; their ids in order.
        With an idempotency key the ids are derived from it, so a retry repeats them."""
        payloads = [s.data(lane) for s in signups]
        if key is None:
            envelopes = [Envelope("signup.created", p) for p in payloads]
        else:
            ids = idempotency.signup_ids(key, lane, payloads)
            envelopes = [Envelope("signup.created", p, id=i) for p, i in zip(payloads, ids, strict=True)]
        if not self.enabled:
            return [e.id for e in envelopes]
        futures: list[Future[None]] = [
            self.publisher.publish_async(e, lane=lane, correlation_id=g.request_id) for e in envelopes
        ]
        deadline = time.monotonic() + self.confirm_timeout
        accepted: list[str] = []
        uncertain: list[str] = []
        failure: Exception | None = None
        for envelope, future in zip(envelopes, futures, strict=True):
            try:
                self.publisher.wait(future, max(0.0, deadline - time.monotonic()))
                accepted.append(envelope.id)
            except PublishError as exc:
                failure = failure or exc
                if not (isinstance(exc, PublishTimeout) and exc.withdrawn):
                    uncertain.append(envelope.id)
        if failure is not None:
            raise BrokerUnavailable(failure, accepted, uncertain)
        # One line per signup, so an operator can follow any of them from the request id on.
        for signup_id in accepted:
            log.info(
                "signup accepted",
                extra={"fields": {"signup_id": signup_id, "request_id": g.request_id, "lane": lane}},
            )
        return accepted


def signups() -> SignupPublisher:
    """The current app's signup publisher."""
    extension: SignupPublisher = current_app.extensions["offload_signups"]
    return extension
