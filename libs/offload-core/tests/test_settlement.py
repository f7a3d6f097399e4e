"""The settlement rules: pure functions, no broker."""

from __future__ import annotations

import pytest

from offload_core.headers import ATTEMPT_HEADER, ENQUEUED_AT_HEADER, PARK_REASON_HEADER, PARKED_FROM_HEADER
from offload_core.settlement import (
    ACKED,
    Outcome,
    Park,
    Retry,
    Verdict,
    attempt_of,
    message_verdict,
    move_for,
    settle,
    verdict_of,
)
from offload_core.topology import DEAD_EXCHANGE, RETRY_EXCHANGE, Topology, WorkQueue, delay_queue_name

TOPOLOGY = Topology((WorkQueue("t.work", bindings=("signup.created.*",)),), delay_tiers=(5.0, 30.0))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (None, ACKED),
        (Park("no such template"), Verdict(Outcome.PARKED, "no such template")),
        (Park(), Verdict(Outcome.PARKED, "parked by handler")),
        (Retry("421 try later"), Verdict(Outcome.RETRIED, "421 try later")),
        (KeyError("fruit"), Verdict(Outcome.RETRIED, "KeyError: 'fruit'")),
    ],
)
def test_how_a_handler_ended_is_its_verdict(error, expected):
    assert verdict_of(error) == expected


def test_a_retry_at_the_last_attempt_parks_and_says_why():
    retry = Verdict(Outcome.RETRIED, "421 try later")
    assert settle(retry, attempt=4, max_attempts=5) == retry
    assert settle(retry, attempt=5, max_attempts=5) == Verdict(
        Outcome.PARKED, "gave up after 5 attempts: 421 try later"
    )
    assert settle(ACKED, attempt=5, max_attempts=5) == ACKED


def test_in_a_batch_invalid_and_singled_out_messages_are_settled_alone():
    retried = Verdict(Outcome.RETRIED, "store down")
    singled = {"b": "unknown fruit"}
    kw = {"singled_out": singled}
    assert message_verdict(ACKED, invalid="", message_id="a", **kw) == ACKED
    assert message_verdict(ACKED, invalid="", message_id="b", **kw) == Verdict(
        Outcome.PARKED, "unknown fruit"
    )
    assert message_verdict(ACKED, invalid="bad json", message_id=None, **kw) == Verdict(
        Outcome.INVALID, "bad json"
    )
    # A batch that failed as a whole retries every valid message, singled out or not.
    assert message_verdict(retried, invalid="", message_id="b", **kw) == retried


def test_the_attempt_header_is_trusted_only_when_it_makes_sense():
    assert attempt_of({}) == 1
    assert attempt_of({ATTEMPT_HEADER: 3}) == 3
    assert attempt_of({ATTEMPT_HEADER: 0}) == 1
    assert attempt_of({ATTEMPT_HEADER: "3"}) == 1


def test_a_retry_moves_to_the_delay_tier_of_its_attempt_and_is_due_from_then():
    headers = {ATTEMPT_HEADER: 2, "x-death": [{"count": 1}], "keep": "me"}
    move = move_for(
        Verdict(Outcome.RETRIED, "x" * 900), queue="t.work", headers=headers, topology=TOPOLOGY, now=1000.0
    )
    assert move is not None
    assert (move.exchange, move.routing_key) == (RETRY_EXCHANGE, delay_queue_name("t.work", 30.0))
    assert move.headers[ATTEMPT_HEADER] == 3
    assert move.headers[ENQUEUED_AT_HEADER] == 1_030_000
    assert "x-death" not in move.headers and move.headers["keep"] == "me"
    assert len(move.headers["x-offload-last-error"]) == 500
    assert headers[ATTEMPT_HEADER] == 2  # the delivery's own headers are not touched


@pytest.mark.parametrize("outcome", [Outcome.PARKED, Outcome.INVALID])
def test_a_park_goes_to_the_dead_exchange_with_its_reason_and_origin(outcome):
    move = move_for(Verdict(outcome, "why"), queue="t.work", headers={}, topology=TOPOLOGY, now=1000.0)
    assert move is not None
    assert (move.exchange, move.routing_key) == (DEAD_EXCHANGE, "t.work")
    assert move.headers[PARK_REASON_HEADER] == "why" and move.headers[PARKED_FROM_HEADER] == "t.work"


@pytest.mark.parametrize("outcome", [Outcome.ACKED, Outcome.REQUEUED])
def test_an_ack_or_a_give_back_moves_nothing(outcome):
    assert move_for(Verdict(outcome), queue="t.work", headers={}, topology=TOPOLOGY, now=0.0) is None
