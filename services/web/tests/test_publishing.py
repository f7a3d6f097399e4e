"""A signup's facts and what the web answers when only some of them were confirmed."""

from __future__ import annotations

import pytest

from offload_core.contracts import default_contracts
from offload_web.publishing import Fate, facts, signup_fate

C, W, U = Fate.CONFIRMED, Fate.WITHDRAWN, Fate.UNCERTAIN


@pytest.mark.parametrize(
    ("fates", "fate"),
    [
        ([C, C], C),
        ([W, W], W),
        ([C, W], U),  # the mailer has it, stats not: a retry with the key completes it
        ([W, C], U),
        ([U, W], U),
        ([W, U], U),
        ([U, U], U),
        ([C, U], U),
    ],
)
def test_a_signup_is_accepted_only_whole_and_withdrawn_only_whole(fates, fate):
    assert signup_fate(fates) is fate


def test_the_mailers_fact_has_the_person_and_stats_fact_only_what_it_counts():
    payload = {"name": "Ada", "email": "ada@example.com", "fruit": "kiwi", "lane": "low"}
    created, accepted = facts("s-1", payload)
    assert (created.type, created.id, created.data) == ("signup.created", "s-1", payload)
    assert (accepted.type, accepted.id) == ("signup.accepted", "signup.accepted-s-1")
    assert accepted.data == {"signup_id": "s-1", "fruit": "kiwi", "lane": "low"}
    for envelope in (created, accepted):
        default_contracts().check_envelope(envelope.to_dict())
        default_contracts().get(envelope.type, 1).validate(envelope.data)
    # A retry derives the same signup id, so it repeats both facts' ids.
    assert [e.id for e in facts("s-1", payload)] == [created.id, accepted.id]
