"""The key a welcome is claimed under: one per mailbox, never the address itself.

The web already normalises what it accepts (email-validator: Unicode NFC, the domain
lower-cased and in its ASCII form). The mailer keys on the whole address lower-cased:
RFC 5321 lets a server treat `Ada@` and `ada@` as two mailboxes, but the mail systems
people use do not, and a stranger who may vary the case gets one welcome, not 2^n. A
Unicode domain in a message from an older web is converted here as well, so both
spellings claim one key. The key is a SHA-256 digest, so the sent-store holds no
addresses (personal data) and every key has the same size.
"""

from __future__ import annotations

import hashlib
import re

# Anything shaped like an address in a relay's reply ("550 5.1.1 <ada@example.com>: no such
# user"): a local part, "@", a dotted domain. Loose on purpose: it only has to catch what
# a relay echoes, and replacing a non-address that looks like one costs nothing.
_ADDRESS_LIKE = re.compile(r"[^\s<>()\[\]\\,;:\"]+@[^\s<>()\[\]\\,;:\"]+")


def ascii_domain(address: str) -> str:
    """`address` with its domain lower-cased and IDNA-encoded (the local part untouched)."""
    local, _, domain = address.rpartition("@")
    domain = domain.strip().lower()
    if not domain.isascii():
        # Python's codec is IDNA 2003; the web's validator uses IDNA 2008. They agree on
        # the domains the web lets through, which reach here already in ASCII.
        domain = domain.encode("idna").decode("ascii")
    return f"{local}@{domain}"


def welcome_key(address: str) -> str:
    """The sent-store key of the mailbox `address` names."""
    return hashlib.sha256(ascii_domain(address).lower().encode("utf-8")).hexdigest()


def without_addresses(text: str) -> str:
    """`text` with every address in it replaced by `<address>`: relays quote the recipient
    in their refusals, and such a text goes into log lines, the parked message's reason and
    the mail.failed event that stats receives."""
    return _ADDRESS_LIKE.sub("<address>", text)
