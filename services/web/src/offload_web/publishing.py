"""Signups onto the broker: accepted only once RabbitMQ confirmed them.

The web's Flask extension (`init_app`, as Flask's own extensions do): it owns the
process's publisher, which gunicorn's worker_exit hook closes.
"""

from __future__ import annotations

import enum
import logging
import time

from flask import Flask, current_app, g

from offload_core.config import CoreConfig
from offload_core.envelope import Envelope, derived_id
from offload_core.ids import random_uuid
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


def facts(signup_id: str, payload: dict[str, str]) -> tuple[Envelope, Envelope]:
    """The two messages a signup is published as: `signup.created`, the person's data, for the
    mailer alone; `signup.accepted`, what stats counts and nothing personal. Both ids follow
    from the signup id, so a retry repeats both."""
    counted = {"signup_id": signup_id, "fruit": payload["fruit"], "lane": payload["lane"]}
    return (
        Envelope("signup.created", payload, id=signup_id),
        Envelope("signup.accepted", counted, id=derived_id("signup.accepted", signup_id)),
    )


class Fate(enum.Enum):
    CONFIRMED = "confirmed"
    WITHDRAWN = "withdrawn"  # never written to the broker
    UNCERTAIN = "uncertain"  # written, unconfirmed: it may still take effect


def signup_fate(fates: list[Fate]) -> Fate:
    """A signup is accepted when every one of its facts is confirmed, withdrawn when every one
    was withdrawn unsent; anything between may take effect in part, and a retry with the same
    key completes it (the ids repeat, the consumers dedupe)."""
    if all(f is Fate.CONFIRMED for f in fates):
        return Fate.CONFIRMED
    if all(f is Fate.WITHDRAWN for f in fates):
        return Fate.WITHDRAWN
    return Fate.UNCERTAIN


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
        """Publish every signup's facts, pipelined, and wait for all confirms; the signup ids
        in order. With an idempotency key the ids are derived from it, so a retry repeats them."""
        payloads = [s.data(lane) for s in signups]
        if key is None:
            ids = [str(random_uuid()) for _ in payloads]
        else:
            ids = idempotency.signup_ids(key, lane, payloads)
        if not self.enabled:
            return ids
        published = [
            [self.publisher.publish_async(e, lane=lane, correlation_id=g.request_id) for e in facts(i, p)]
            for i, p in zip(ids, payloads, strict=True)
        ]
        deadline = time.monotonic() + self.confirm_timeout
        accepted: list[str] = []
        uncertain: list[str] = []
        failure: Exception | None = None
        for signup_id, futures in zip(ids, published, strict=True):
            fates = []
            for future in futures:
                try:
                    self.publisher.wait(future, max(0.0, deadline - time.monotonic()))
                    fates.append(Fate.CONFIRMED)
                except PublishError as exc:
                    failure = failure or exc
                    withdrawn = isinstance(exc, PublishTimeout) and exc.withdrawn
                    fates.append(Fate.WITHDRAWN if withdrawn else Fate.UNCERTAIN)
            fate = signup_fate(fates)
            if fate is Fate.CONFIRMED:
                accepted.append(signup_id)
            elif fate is Fate.UNCERTAIN:
                uncertain.append(signup_id)
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
