"""The welcome email: Jinja2 templates (plain text + HTML), safe headers, stable Message-ID."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any

from jinja2 import Environment, PackageLoader, StrictUndefined, select_autoescape

FRUIT_NOTES = {
    "apple": "Crisp news from the orchard: the first apples of the season are in.",
    "banana": "Ripe and ready: our banana bread recipe is waiting for you.",
    "cherry": "Cherry season is short, so we will tell you the moment it starts.",
    "grape": "From vine to table: a bunch of grape facts every month.",
    "kiwi": "Small, fuzzy and full of vitamin C: kiwi tips are on their way.",
    "mango": "Sweet news: the mango harvest calendar, straight to your inbox.",
    "orange": "Fresh squeezed: orange offers and recipes for sunny mornings.",
    "pear": "Pear-fect timing: we will let you know when the pears are ripe.",
}
# Anything that could end a header line or smuggle in another header.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")

_templates = Environment(
    loader=PackageLoader("offload_mailer", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
    undefined=StrictUndefined,
    keep_trailing_newline=True,
)


class TemplateProblem(Exception):
    """The email cannot be built from this signup (a permanent failure)."""


def header_safe(value: str, limit: int = 200) -> str:
    return _UNSAFE.sub(" ", value).strip()[:limit]


def message_id(signup_id: str, domain: str) -> str:
    # Derived from the signup id: a resent copy carries the same Message-ID, so receivers
    # that de-duplicate on it drop the copy.
    return f"<signup-{header_safe(signup_id, 128)}@{domain}>"


def compose(
    signup_id: str, data: dict[str, Any], *, mail_from: str, domain: str, occurred_at: str | None = None
) -> EmailMessage:
    name = header_safe(str(data["name"]), 75)
    fruit = str(data["fruit"])
    context = {"name": name, "fruit": fruit, "note": FRUIT_NOTES.get(fruit, "Fruit news is on its way.")}
    try:
        text = _templates.get_template("welcome.txt").render(context)
        html = _templates.get_template("welcome.html").render(context)
    except Exception as exc:
        raise TemplateProblem(f"template failed: {type(exc).__name__}: {exc}") from exc
    try:
        recipient = Address(display_name=name, addr_spec=str(data["email"]))
    except (ValueError, TypeError, IndexError) as exc:
        raise TemplateProblem(f"invalid recipient address: {exc}") from exc
    message = EmailMessage()
    message["From"] = mail_from
    message["To"] = recipient
    message["Subject"] = header_safe(f"Welcome to fruit news, {name}!", 150)
    message["Message-ID"] = message_id(signup_id, domain)
    message["Date"] = format_datetime(_when(occurred_at))
    message["X-Offload-Signup-Id"] = header_safe(signup_id, 128)
    message.set_content(text)
    message.add_alternative(html, subtype="html")
    return message


def _when(occurred_at: str | None) -> datetime:
    if occurred_at:
        try:
            return datetime.fromisoformat(occurred_at.replace("Z", "+00:00"))
        except ValueError:
            pass
    return datetime.now(UTC)
