"""Slow request headers against the real gunicorn (offload_core.header_deadline): a crowd of clients that
send one header byte a second does not stall anyone else's signups, and each of them is cut."""

from __future__ import annotations

import re
import socket
import time
import uuid
from collections.abc import Iterator

import pytest
import requests

from offload_core.header_deadline import MAX_HEADER_BYTES
from offload_testkit.slow_clients import SlowHeaderCrowd
from offload_testkit.stack import Service, start_web

from .conftest import web_env

pytestmark = pytest.mark.timing

WORKER_CONNECTIONS = 16
THREADS = 4
CROWD = 4 * WORKER_CONNECTIONS  # every connection slot taken four times over


def start_small_web(core_config, tmp_path, header_timeout: str) -> Service:
    """One worker with four threads: four slow clients would be enough to stall it."""
    env = web_env(
        core_config,
        OFFLOAD_WEB_WORKERS="1",
        OFFLOAD_WEB_THREADS=str(THREADS),
        OFFLOAD_WEB_WORKER_CONNECTIONS=str(WORKER_CONNECTIONS),
        OFFLOAD_WEB_HEADER_TIMEOUT=header_timeout,
        OFFLOAD_WEB_WORKER_CLASS="gthread",
        # What is checked is the web's threads, not the broker's pace: on a loaded machine a
        # confirm may take longer than the suite's usual 2 s.
        OFFLOAD_CONFIRM_TIMEOUT="10",
    )
    return start_web(env, tmp_path)


@pytest.fixture
def small_web(core_config, tmp_path) -> Iterator[Service]:
    service = start_small_web(core_config, tmp_path, "2")
    yield service
    assert service.terminate() == 0, service.process.logs()


def signup(url: str, timeout: float = 15) -> tuple[int | None, float]:
    """One prompt client's signup on a new connection: (status or None on a timeout, seconds)."""
    started = time.perf_counter()
    try:
        answer = requests.post(
            url + "/api/v1/signups",
            json={"name": "Prompt", "email": f"prompt-{uuid.uuid4().hex[:10]}@example.com", "fruit": "apple"},
            headers={"Connection": "close"},
            timeout=timeout,
        )
    except requests.RequestException:
        return None, time.perf_counter() - started
    return answer.status_code, time.perf_counter() - started


def cuts(service: Service) -> dict[str, float]:
    text = requests.get(service.status_url + "/metrics", timeout=5).text
    return {
        match[1]: float(match[2])
        for match in re.finditer(r'^offload_http_slow_clients_cut_total\{reason="(\w+)"\} (\S+)$', text, re.M)
    }


def test_a_crowd_of_slow_header_clients_does_not_stall_signups(small_web):
    with SlowHeaderCrowd(small_web.address, CROWD) as crowd:
        results = []
        deadline = time.monotonic() + 60
        # Signups go on until the crowd has been cut and has come back several times over, so
        # every signup below met a full crowd.
        while crowd.reopened < 2 * CROWD or len(results) < 50:
            assert time.monotonic() < deadline, f"the crowd was reopened {crowd.reopened} times only"
            results.append(signup(small_web.url))
    failed = [
        (index, status, f"{seconds:.1f}s") for index, (status, seconds) in enumerate(results) if status != 202
    ]
    assert not failed, f"{len(failed)} of {len(results)} signups not accepted (index, status, time): {failed}"
    latencies = sorted(seconds for _, seconds in results)
    print(
        f"signups={len(results)} p50_ms={latencies[len(latencies) // 2] * 1000:.1f} "
        f"max_ms={latencies[-1] * 1000:.1f} crowd_reopened={crowd.reopened}"
    )
    assert cuts(small_web).get("crowded", 0) >= 2 * CROWD - WORKER_CONNECTIONS


def test_negative_control_gunicorns_own_worker_stalls_under_the_crowd(core_config, tmp_path):
    """The same crowd against gunicorn's gthread worker (OFFLOAD_WEB_HEADER_TIMEOUT=0): the
    slow clients hold every thread, and a prompt client gets no answer."""
    service = start_small_web(core_config, tmp_path, "0")
    try:
        with SlowHeaderCrowd(service.address, CROWD) as crowd:
            results = [signup(service.url, timeout=3) for _ in range(3)]
        assert [status for status, _ in results] == [None] * 3
        assert crowd.reopened == 0  # nobody was cut
    finally:
        service.kill()


def test_headers_not_complete_in_time_are_answered_408_and_cut(small_web):
    started = time.monotonic()
    with SlowHeaderCrowd(small_web.address, 1) as crowd:
        answer = crowd.first_answer(timeout=15)
    assert answer is not None, "the slow client was never cut"
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert time.monotonic() - started >= 2  # OFFLOAD_WEB_HEADER_TIMEOUT
    assert cuts(small_web)["header_timeout"] >= 1


def test_a_header_block_over_the_limit_is_answered_431(small_web):
    connection = socket.create_connection(small_web.address, timeout=10)
    try:
        header = b"GET / HTTP/1.1\r\nHost: x\r\n" + b"".join(
            b"X-Filler-%d: %s\r\n" % (index, b"v" * 1000) for index in range(MAX_HEADER_BYTES // 1000 + 2)
        )
        connection.sendall(header)
        assert connection.recv(4096).startswith(b"HTTP/1.1 431 ")
    finally:
        connection.close()


def test_kept_alive_and_pipelined_requests_are_still_served(small_web):
    with requests.Session() as session:
        assert [session.get(small_web.url + "/", timeout=5).status_code for _ in range(3)] == [200] * 3
    connection = socket.create_connection(small_web.address, timeout=10)
    try:
        request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
        connection.sendall(request + request[:10])  # the second request's headers arrive later
        received = b""
        while received.count(b"HTTP/1.1 200") < 1:
            received += connection.recv(4096)
        connection.sendall(request[10:])
        while received.count(b"HTTP/1.1 200") < 2:
            received += connection.recv(4096)
    finally:
        connection.close()
