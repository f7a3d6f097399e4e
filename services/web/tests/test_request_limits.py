"""Oversize and slow requests against the real gunicorn: refused or cut, never a 5xx, and
slow clients cannot take the server's threads away from everyone else."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest
import requests

from offload_testkit.stack import Service, start_web


@pytest.fixture
def small_web(core_config, tmp_path, worker_class) -> Iterator[Service]:
    """One worker serving two requests at once (two threads, or two greenlets), so two
    stalled clients would be enough to block it."""
    env = {
        "OFFLOAD_AMQP_URL": core_config.amqp_url,
        "OFFLOAD_WEB_WORKER_CLASS": worker_class,
        "OFFLOAD_WEB_WORKERS": "1",
        "OFFLOAD_WEB_THREADS": "2",
        "OFFLOAD_WEB_WORKER_CONNECTIONS": "2",
        "OFFLOAD_WEB_BODY_TIMEOUT": "2",
    }
    service = start_web(env, tmp_path)
    yield service
    assert service.terminate() == 0, service.process.logs()


def raw(url: str, data: bytes, *, read: bool = True, timeout: float = 10) -> tuple[socket.socket, bytes]:
    parts = urlsplit(url)
    connection = socket.create_connection((parts.hostname, parts.port), timeout=timeout)
    connection.sendall(data)
    return connection, connection.recv(65536) if read else b""


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1])


def test_oversize_request_line_and_headers_are_refused_by_gunicorn(small_web):
    connection, answer = raw(small_web.url, b"GET /" + b"a" * 5000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
    connection.close()
    assert 400 <= status_of(answer) < 500
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(150))
    connection, answer = raw(small_web.url, b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
    connection.close()
    assert 400 <= status_of(answer) < 500
    connection, answer = raw(
        small_web.url, b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 9000 + b"\r\n\r\n"
    )
    connection.close()
    assert 400 <= status_of(answer) < 500


def test_a_declared_oversize_body_is_refused_before_it_is_sent(small_web):
    head = (
        b"POST /api/v1/signups HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 50000000\r\n\r\n"
    )
    connection, answer = raw(small_web.url, head)  # the 50 MB never follow
    connection.close()
    assert status_of(answer) == 413 and b"application/problem+json" in answer


def test_slow_bodies_are_cut_and_do_not_starve_other_clients(small_web):
    head = (
        b"POST /api/v1/signups HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b'Content-Length: 200\r\n\r\n{"name": '
    )
    # Three stalled uploads against two at a time: without a body timeout the third client
    # and everyone after it would wait for as long as the stalled ones cared to.
    stalled = [raw(small_web.url, head, read=False)[0] for _ in range(3)]
    started = time.monotonic()
    try:
        for connection in stalled:
            connection.settimeout(15)  # a connection left open fails the test with a timeout
            answer = b""
            while chunk := connection.recv(65536):  # up to the server closing the connection
                answer += chunk
            assert status_of(answer) == 408, answer[:300]  # cut after OFFLOAD_WEB_BODY_TIMEOUT
        assert time.monotonic() - started < 12
        page = requests.get(small_web.url + "/", timeout=10)
        assert page.status_code == 200
    finally:
        for connection in stalled:
            connection.close()
