"""One mailbox, whatever the spelling (offload_core.mailboxes)."""

from __future__ import annotations

import pytest

from offload_core.mailboxes import ascii_domain, mailbox


def test_the_address_is_lower_cased_with_its_domain_in_ascii() -> None:
    assert mailbox("Ada@BÜCHER.example") == "ada@xn--bcher-kva.example"
    assert mailbox("ädä@Example.COM") == "ädä@example.com"
    assert mailbox("ada@bücher.example") == mailbox("ADA@xn--bcher-kva.example")
    assert mailbox("ada@example.com") != mailbox("bob@example.com")


def test_a_domain_that_cannot_be_encoded_is_refused() -> None:
    assert ascii_domain(" Example.COM ") == "example.com"
    with pytest.raises(UnicodeError):
        ascii_domain("a" * 64 + ".bücher.example")  # a label over 63 characters
