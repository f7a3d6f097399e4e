"""The chaos verdict is a pure function: each promise it checks, and what breaks it."""

from __future__ import annotations

import collections
import dataclasses

import pytest

from tests.chaos.verdict import (
    Fault,
    Ledger,
    Observation,
    Policy,
    Window,
    expected_counters,
    verdict,
)


def ledger(accepted: int = 3) -> Ledger:
    book = Ledger()
    for i in range(accepted):
        address = f"a{i}@example.com"
        book.accepted[address] = f"id-{i}"
        book.fruits[address] = "kiwi"
        book.requests["/api/v1/signups", "curl/8.5", "2xx"] += 1
        book.requests["/", "curl/8.5", "2xx"] += 1
    return book


def clean(book: Ledger) -> Observation:
    return Observation(
        copies={address: 1 for address in book.accepted},
        counters=expected_counters(book),
        dropped_reports=0,
        depths={"mailer.signups.high": (0, 0), "mailer.signups.high.parked": (0, 0)},
        finished=True,
        window=Window(),
        faults=(Fault("kill", 2),),
    )


def test_a_clean_run_passes():
    book = ledger()
    result = verdict("s", Policy(), book, clean(book))
    assert result.passed, result.line()
    assert (result.accepted, result.delivered, result.duplicates, result.lost) == (3, 3, 0, 0)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (
            lambda b, o: dataclasses.replace(o, copies={**o.copies, "a0@example.com": 2}),
            "outside the duplicate window",
        ),
        (
            lambda b, o: dataclasses.replace(
                o, copies={**o.copies, "a0@example.com": 3}, window=Window(frozenset({"a0@example.com"}))
            ),
            "outside the duplicate window",
        ),
        (
            lambda b, o: dataclasses.replace(o, copies={"a0@example.com": 1, "a1@example.com": 1}),
            "never mailed",
        ),
        (lambda b, o: dataclasses.replace(o, copies={**o.copies, "x@example.com": 1}), "never accepted"),
        (lambda b, o: dataclasses.replace(o, faults=(Fault("kill", 0),)), "fault came too late"),
        (lambda b, o: dataclasses.replace(o, faults=()), "no fault"),
        (lambda b, o: dataclasses.replace(o, counters={**o.counters, ("mails", "sent"): 4}), "stats mails"),
        (lambda b, o: dataclasses.replace(o, counters={**o.counters, ("fruit", "kiwi"): 2}), "stats fruit"),
        (lambda b, o: dataclasses.replace(o, counters={**o.counters, ("path", "/"): 2}), "stats path"),
        (lambda b, o: dataclasses.replace(o, finished=False), "did not finish"),
        (lambda b, o: dataclasses.replace(o, depths={"mailer.signups.high": (0, 1)}), "1 unacked"),
    ],
)
def test_each_broken_promise_fails_the_run(change, problem):
    book = ledger()
    result = verdict("s", Policy(), book, change(book, clean(book)))
    assert not result.passed
    assert any(problem in p for p in result.problems), result.line()


def test_a_duplicate_inside_the_window_passes_once():
    book = ledger()
    observed = dataclasses.replace(
        clean(book),
        copies={**clean(book).copies, "a0@example.com": 2},
        window=Window(frozenset({"a0@example.com"})),
    )
    result = verdict("s", Policy(), book, observed)
    assert result.passed and result.duplicates == 1 and result.window == 1, result.line()


def test_refusals_fail_unless_the_broker_was_faulted():
    book = ledger()
    book.refused = 2
    assert not verdict("s", Policy(), book, clean(book)).passed
    assert verdict("s", Policy(broker_faulted=True), book, clean(book)).passed
    book.gave_up.append("a9@example.com")
    assert not verdict("s", Policy(broker_faulted=True), book, clean(book)).passed


def test_nothing_accepted_proves_nothing():
    book = ledger(0)
    assert "no signup was accepted" in verdict("s", Policy(), book, clean(book)).problems[0]


def test_dropped_reports_allow_request_counts_to_fall_short_by_that_much_only():
    book = ledger()
    counters = dict(expected_counters(book))
    counters["requests", "total"] -= 1
    counters["path", "/"] -= 1
    counters["user_agent", "curl"] -= 1
    counters["status_class", "2xx"] -= 1
    short = dataclasses.replace(clean(book), counters=counters, dropped_reports=1)
    assert verdict("s", Policy(), book, short).passed
    assert not verdict("s", Policy(), book, dataclasses.replace(short, dropped_reports=0)).passed
    over = dict(expected_counters(book))
    over["path", "/"] += 1
    assert not verdict(
        "s", Policy(), book, dataclasses.replace(clean(book), counters=over, dropped_reports=5)
    ).passed


def test_expected_counts_cover_every_family():
    book = ledger(2)
    book.counted_only["p@example.com"] = "pear"
    book.repeated["a0@example.com"] = 2  # two more signups for one address: suppressed
    assert expected_counters(book) == {
        ("signups", "total"): 5,
        ("fruit", "kiwi"): 4,
        ("fruit", "pear"): 1,
        ("lane", "high"): 5,
        ("mails", "sent"): 2,
        ("mails", "suppressed"): 2,
        ("requests", "total"): 4,
        ("path", "/api/v1/signups"): 2,
        ("path", "/"): 2,
        ("user_agent", "curl"): 4,  # the family the web reports for the agent
        ("status_class", "2xx"): 4,
    }
    assert isinstance(book.requests, collections.Counter)
