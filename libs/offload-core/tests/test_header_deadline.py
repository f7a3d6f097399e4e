"""When a header block is complete (offload_core.header_deadline.HeaderBlock); the worker
itself is tested under the web's gunicorn: services/web/tests/test_slow_clients.py."""

from __future__ import annotations

import pytest

from offload_core.header_deadline import MAX_HEADER_BYTES, HeaderBlock


def fed(received: bytes, piece: int) -> HeaderBlock:
    block = HeaderBlock()
    for start in range(0, max(len(received), 1), piece):
        block.add(received[start : start + piece])
    return block


@pytest.mark.parametrize("piece", [1, 2, 3, 7, 4096])  # the same answer however it arrives
@pytest.mark.parametrize(
    ("received", "complete"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", False),
        (b"GET / HTTP/1.1\nHost: x\n\n", True),
        (b"\r\n\r\nGET / HTTP/1.1\r\nHost", False),  # empty lines first are not a header block
        (b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"\r\n" * 100, False),
        (b'GET / HTTP/1.1\r\nHost: x\r\n\r\n{"body": 1}', True),
        (b"", False),
    ],
)
def test_a_header_block_is_complete_at_the_empty_line_after_its_fields(
    received: bytes, complete: bool, piece: int
) -> None:
    assert fed(received, piece).complete is complete


def test_a_block_over_the_limit_is_too_large() -> None:
    block = fed(b"GET / HTTP/1.1\r\nX-Filler: " + b"v" * MAX_HEADER_BYTES, 1000)
    assert block.too_large and not block.complete
