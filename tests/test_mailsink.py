"""The local mail sink's Mailpit subset, read through the same client the e2e suite uses."""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Iterator
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import ModuleType

import pytest
import requests

from offload_testkit.mailpit import mailpit_copies

SINK = Path(__file__).resolve().parents[1] / "deploy/docker/mailsink/mailsink.py"


def load_sink() -> ModuleType:
    spec = importlib.util.spec_from_file_location("mailsink", SINK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def sink() -> Iterator[tuple[object, str]]:
    module = load_sink()
    inbox = module.Inbox()
    server = ThreadingHTTPServer(("127.0.0.1", 0), module.http_handler(inbox))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield inbox, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def mail(to: str) -> bytes:
    return f"Message-ID: <{to}>\r\nSubject: hi\r\n\r\nbody\r\n".encode()


def test_every_page_is_read_once_past_the_client_page_size(sink):
    # mailpit_copies reads 500 per page: 1 234 messages take three pages, and each
    # address must be counted exactly once (a sink that ignored `start` counts the newest
    # page three times and misses the oldest addresses).
    inbox, url = sink
    addresses = [f"user{i}@example.com" for i in range(1234)]
    for address in addresses:
        inbox.add("welcome@offload.test", [address], mail(address))
    inbox.add("welcome@offload.test", [addresses[7]], mail(addresses[7]))

    copies = mailpit_copies(url)

    assert set(copies) == set(addresses)
    assert copies[addresses[7]] == 2
    assert sum(copies.values()) == 1235


def test_bad_paging_is_a_400(sink):
    _, url = sink
    for params in ({"start": "x"}, {"limit": "-1"}, {"start": "-5"}):
        answer = requests.get(url + "/api/v1/messages", params=params, timeout=5)
        assert answer.status_code == 400, params
