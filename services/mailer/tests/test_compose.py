"""Building the welcome email: parts, headers, escaping, header injection."""

from __future__ import annotations

from email import message_from_bytes
from email.policy import default

import pytest

from offload_mailer.compose import TemplateProblem, compose, header_safe


def build(**data):
    signup = {"name": "Ada", "email": "ada@example.com", "fruit": "kiwi", "lane": "high"} | data
    return compose("3f1c", signup, mail_from="Fruit <welcome@example.com>", domain="example.com")


def test_both_parts_and_headers():
    message = build()
    assert message["Message-ID"] == "<signup-3f1c@example.com>"
    assert message["To"] == "Ada <ada@example.com>"
    assert message["Subject"] == "Welcome to fruit news, Ada!"
    assert message.get_content_type() == "multipart/alternative"
    text = message.get_body(("plain",)).get_content()
    html = message.get_body(("html",)).get_content()
    assert "kiwi" in text and "kiwi tips" in text
    assert "<strong>kiwi</strong>" in html


def test_content_varies_by_fruit():
    assert (
        build(fruit="mango").get_body(("plain",)).get_content() != build().get_body(("plain",)).get_content()
    )


def test_html_part_escapes_the_name():
    html = build(name="<script>x</script>").get_body(("html",)).get_content()
    assert "<script>" not in html and "&lt;script&gt;" in html


def test_cr_lf_in_a_name_cannot_inject_a_header():
    message = build(name="Eve\r\nBcc: victim@example.com")
    wire = message.as_bytes()
    parsed = message_from_bytes(wire, policy=default)
    assert parsed["Bcc"] is None and parsed["Cc"] is None
    assert "\r\nBcc:" not in wire.decode()
    assert header_safe("a\u2028b\x85c") == "a b c"


def test_cr_lf_in_an_address_is_a_permanent_failure_not_a_header():
    with pytest.raises(TemplateProblem, match="invalid recipient"):
        build(email="eve@example.com\r\nCc: x@example.com")
