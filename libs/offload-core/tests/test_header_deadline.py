"""The header deadline's rule for a complete header block (the worker itself is tested under
the web's gunicorn: services/web/tests/test_slow_clients.py)."""

from __future__ import annotations

import pytest

from offload_core.header_deadline import header_block_complete


@pytest.mark.parametrize(
    ("received", "complete"),
    [
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", False),
        (b"GET / HTTP/1.1\nHost: x\n\n", True),
        (b"\r\n\r\nGET / HTTP/1.1\r\nHost", False),  # empty lines first are not a header block
        (b"\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
        (b"", False),
    ],
)
def test_header_block_complete(received: bytes, complete: bool) -> None:
    assert header_block_complete(received) is complete
