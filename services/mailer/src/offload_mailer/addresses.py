"""Addresses in the mailer: the key a welcome is claimed under, one per mailbox, never the
address itself; and relay replies without the addresses they quote.

The web already normalises what it accepts (email-validator: Unicode NFC, the domain
lower-cased and in its ASCII form); a Unicode domain in a message from an older web is
converted here as well (offload_core.mailboxes), so both spellings claim one key. The key
is a SHA-256 digest, so the sent-store holds no addresses (personal data) and every key
has the same size.
"""

from __future__ import annotations

import hashlib
import re

from offload_core.mailboxes import mailbox

# Anything shaped like an address in a relay's reply ("550 5.1.1 <ada@example.com>: no such
# user"): a local part, "@", a dotted domain. Loose on purpose: it only has to catch what
# a relay echoes, and replacing a non-address that looks like one costs nothing.
_ADDRESS_LIKE = re.compile(r"[^\s<>()\[\]\\,;:\"]+@[^\s<>()\[\]\\,;:\"]+")


def welcome_key(address: str) -> str:
    """The sent-store key of the mailbox `address` names (offload_core.mailboxes)."""
    return hashlib.sha256(mailbox(address).encode("utf-8")).hexdigest()


def without_addresses(text: str) -> str:
    """`text` with every address in it replaced by `<address>`: relays quote the recipient
    in their refusals, and such a text goes into log lines, the parked message's reason and
    the mail.failed event that stats receives."""
    return _ADDRESS_LIKE.sub("<address>", text)
