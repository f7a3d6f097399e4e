"""The welcome key (one per mailbox, whatever the spelling) and relay replies without addresses."""

from __future__ import annotations

import pytest

from offload_mailer.addresses import welcome_key, without_addresses


def test_one_mailbox_has_one_key_and_the_key_is_not_the_address():
    spellings = ["ada@bücher.example", "ADA@xn--bcher-kva.example", "Ada@Bücher.Example"]
    assert len({welcome_key(s) for s in spellings}) == 1
    assert welcome_key("ada@example.com") != welcome_key("bob@example.com")
    assert "ada" not in welcome_key("ada@example.com") and len(welcome_key("a@b.c")) == 64


@pytest.mark.parametrize(
    ("reply", "redacted"),
    [
        (
            "550 5.1.1 <ada@example.com>: Recipient address rejected",
            "550 5.1.1 <<address>>: Recipient address rejected",
        ),
        (
            "550 5.1.1 ada.lovelace+news@xn--bcher-kva.example no such user",
            "550 5.1.1 <address> no such user",
        ),
        (
            "552 5.2.2 mailbox full (ada@example.com, bob@example.org)",
            "552 5.2.2 mailbox full (<address>, <address>)",
        ),
        ("451 4.3.0 try later", "451 4.3.0 try later"),
    ],
)
def test_relay_replies_lose_the_addresses_they_quote(reply: str, redacted: str) -> None:
    assert without_addresses(reply) == redacted
