"""Envelope encoding and decoding, without a broker: bytes in, bytes out."""

from __future__ import annotations

import json

import pika
import pytest

from offload_core.contracts import ContractError
from offload_core.envelope import CONTENT_TYPE, Envelope, decode
from offload_testkit import messages


def signup(name: str = "Zoë Ōkubo 名前") -> Envelope:
    return messages.signup(name=name, email="z@example.com")


def properties(envelope: Envelope) -> pika.BasicProperties:
    return pika.BasicProperties(content_type=CONTENT_TYPE, type=envelope.type, message_id=envelope.id)


def test_bytes_are_compact_utf8_json_that_decodes_to_the_same_envelope():
    envelope = signup()
    body = envelope.to_bytes()
    assert "Zoë Ōkubo 名前".encode() in body  # UTF-8, not \\u escapes
    assert b": " not in body and b", " not in body
    assert json.loads(body) == envelope.to_dict()
    assert decode(body, properties(envelope)) == envelope


def test_an_unencodable_envelope_is_a_value_error_that_names_its_type():
    with pytest.raises(ValueError, match="signup.created cannot be encoded"):
        signup("Eve\ud800").to_bytes()
    with pytest.raises(ValueError, match="cannot be encoded"):
        Envelope("http.request.batch", {"requests": [{"status": 2**70}]}).to_bytes()


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"\xff\xfe not utf-8", "not JSON"),
        (b'{"type": "signup.created", "version": 1, "id": "x", "data": NaN}', "not JSON"),
        (b"[]", "envelope"),
    ],
)
def test_undecodable_bodies_are_contract_errors(body, reason):
    with pytest.raises(ContractError, match=reason):
        decode(body, pika.BasicProperties(content_type=CONTENT_TYPE))
