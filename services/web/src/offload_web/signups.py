"""Signup input: validation shared by the form and the JSON API."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass
from typing import Any

from email_validator import EmailNotValidError, validate_email

from offload_core.contracts import default_contracts
from offload_core.mailboxes import mailbox

_SCHEMA = default_contracts().get("signup.created", 1).schema
# The contract is the single source of the fruit list and the name limit.
FRUITS: tuple[str, ...] = tuple(_SCHEMA["properties"]["fruit"]["enum"])
NAME_MAX = _SCHEMA["properties"]["name"]["maxLength"]
FIELDS = ("name", "email", "fruit")


@dataclass(frozen=True)
class Signup:
    name: str
    email: str
    fruit: str

    def data(self, lane: str) -> dict[str, str]:
        return {"name": self.name, "email": self.email, "fruit": self.fruit, "lane": lane}


# C0/C1 control characters (CR/LF among them) and the Unicode line/paragraph separators:
# anything that could break a mail header line. The same rule is the contract's pattern.
NAME_PATTERN = _SCHEMA["properties"]["name"]["pattern"]
_FORBIDDEN_CATEGORIES = ("Cc", "Zl", "Zp")
# email-validator refuses these special-use domains (RFC 6761): mail to them goes nowhere.
SPECIAL_USE_DOMAINS = ("arpa", "invalid", "local", "localhost", "onion", "test")


def _has_control_characters(text: str) -> bool:
    return any(unicodedata.category(ch) in _FORBIDDEN_CATEGORIES for ch in text)


def _has_lone_surrogates(text: str) -> bool:
    # JSON may spell one ("\ud800"), but it is no character and cannot be encoded as UTF-8.
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def validate_signup(raw: Any) -> tuple[Signup | None, dict[str, str]]:
    """Return (signup, {}) or (None, {field: message}) for every field that is wrong."""
    if not isinstance(raw, dict):
        return None, {"(body)": "must be an object with name, email and fruit"}
    errors: dict[str, str] = {}
    unknown = sorted(set(raw) - set(FIELDS))
    if unknown:
        errors["(body)"] = f"unknown fields: {', '.join(unknown)}"

    name = raw.get("name")
    if not isinstance(name, str):
        errors["name"] = "is required" if name is None else "must be a string"
    else:
        name = name.strip()
        if not name:
            errors["name"] = "is required"
        elif len(name) > NAME_MAX:
            errors["name"] = f"must be at most {NAME_MAX} characters"
        elif _has_control_characters(name):
            # CR/LF and friends would end up in mail headers.
            errors["name"] = "must not contain control characters or line breaks"
        elif _has_lone_surrogates(name):
            errors["name"] = "must be valid Unicode text (it has a lone surrogate)"

    email = raw.get("email")
    if not isinstance(email, str):
        errors["email"] = "is required" if email is None else "must be a string"
    elif not email.strip():
        errors["email"] = "is required"
    elif _has_control_characters(email):
        errors["email"] = "must not contain control characters or line breaks"
    elif _has_lone_surrogates(email):
        errors["email"] = "must be valid Unicode text (it has a lone surrogate)"
    else:
        try:
            valid = validate_email(email.strip(), check_deliverability=False)
        except EmailNotValidError as exc:
            errors["email"] = str(exc)
        else:
            # The domain in its ASCII form, lower-cased: a relay without SMTPUTF8 takes it,
            # and one mailbox has one spelling for the mailer's one-welcome-per-address.
            email = f"{valid.local_part}@{valid.ascii_domain}"
            if len(email) > 254:
                errors["email"] = "must be at most 254 characters"

    fruit = raw.get("fruit")
    if not isinstance(fruit, str):
        errors["fruit"] = "is required" if fruit is None else "must be a string"
    elif fruit not in FRUITS:
        errors["fruit"] = f"must be one of {', '.join(FRUITS)}"

    if errors:
        return None, errors
    assert isinstance(name, str) and isinstance(email, str) and isinstance(fruit, str)
    return Signup(name=name, email=email, fruit=fruit), {}


def repeated_addresses(batch: list[Signup]) -> dict[str, str]:
    """{"[i].email": why} for every signup of `batch` whose mailbox an earlier one names
    (offload_core.mailboxes, as the mailer compares them)."""
    first: dict[str, int] = {}
    errors: dict[str, str] = {}
    for index, signup in enumerate(batch):
        named = mailbox(signup.email)
        if named in first:
            errors[f"[{index}].email"] = f"names the same address as [{first[named]}]"
        else:
            first[named] = index
    return errors
