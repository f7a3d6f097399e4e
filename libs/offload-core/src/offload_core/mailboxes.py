"""When two addresses name one mailbox: the rule the web (a batch naming one address twice,
the per-domain rate limit) and the mailer (one welcome per address) share.

The whole address is compared lower-cased, with its domain in its ASCII (IDNA) form. RFC
5321 lets a server treat `Ada@` and `ada@` as two mailboxes, but the mail systems people
use do not, and a stranger who may vary the case gets one welcome, not 2^n.
"""

from __future__ import annotations


def ascii_domain(domain: str) -> str:
    """`domain` lower-cased and IDNA-encoded; UnicodeError when it cannot be a domain.
    Python's codec is IDNA 2003, the web's validator IDNA 2008: they agree on the domains the
    web lets through, which reach the mailer already in ASCII."""
    domain = domain.strip().lower()
    return domain if domain.isascii() else domain.encode("idna").decode("ascii")


def mailbox(address: str) -> str:
    """The mailbox `address` names: `Ada@BÜCHER.example` and `ada@xn--bcher-kva.example`
    give the same."""
    local, _, domain = address.rpartition("@")
    return f"{local}@{ascii_domain(domain)}".lower()
