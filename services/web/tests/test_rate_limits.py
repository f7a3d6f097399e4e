"""Rate limits on signups under real gunicorn, counted in a real Redis shared by two replicas.

Each check has its control: the same load with the mechanism switched off gets through.
"""

from __future__ import annotations

import collections
import uuid
from collections.abc import Iterator

import pytest
import requests

from offload_testkit.forms import form_session
from offload_testkit.stack import Service, start_web

from .conftest import web_env

pytestmark = pytest.mark.slow


def body(domain: str = "example.com") -> dict[str, str]:
    return {"name": "Spray", "email": f"s-{uuid.uuid4().hex[:10]}@{domain}", "fruit": "kiwi"}


class Replicas:
    """Web replicas started with the same settings; requests go to them in turn."""

    def __init__(self, core_config, tmp_path) -> None:
        self.core_config = core_config
        self.tmp_path = tmp_path
        self.running: list[Service] = []

    def start(self, count: int, **env: str) -> list[Service]:
        started = [
            start_web(web_env(self.core_config, **env), self.tmp_path, name=f"web-{len(self.running) + i}")
            for i in range(count)
        ]
        self.running += started
        return started

    def stop(self) -> None:
        for service in self.running:
            assert service.terminate() == 0, service.process.logs()


@pytest.fixture
def replicas(core_config, tmp_path) -> Iterator[Replicas]:
    running = Replicas(core_config, tmp_path)
    yield running
    running.stop()


def spray(
    webs: list[Service], count: int, path: str = "/api/v1/signups", **kwargs
) -> list[requests.Response]:
    answers = []
    for i in range(count):
        url = webs[i % len(webs)].url + path
        answers.append(
            requests.post(url, json=kwargs.get("json") or body(), timeout=10, headers=kwargs.get("headers"))
        )
    return answers


def statuses(answers: list[requests.Response]) -> collections.Counter[int]:
    return collections.Counter(a.status_code for a in answers)


@pytest.mark.parametrize("storage", ["redis", "memory"], ids=["shared", "control-memory"])
def test_one_client_spraying_distinct_addresses_gets_429_across_replicas(replicas, redis_url, storage):
    """40 signups with distinct addresses from one client, over two replicas of two workers:
    exactly the 10 a minute are accepted, then 429 with Retry-After and problem+json. The
    control counts in each worker's memory, and the same client gets at least 10 per replica."""
    limits = {"OFFLOAD_WEB_SIGNUP_LIMIT_PER_CLIENT": "10/minute;60/hour"}
    store = {"OFFLOAD_WEB_RATE_LIMIT_STORAGE": redis_url if storage == "redis" else "memory://"}
    webs = replicas.start(2, **limits, **store)
    answers = spray(webs, 40)
    counted = statuses(answers)
    assert set(counted) <= {202, 429}, counted
    if storage == "memory":
        assert counted[202] >= 20, counted
        return
    assert counted[202] == 10, counted
    refused = next(a for a in answers if a.status_code == 429)
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert 1 <= int(refused.headers["Retry-After"]) <= 60
    problem = refused.json()
    assert problem["type"].endswith("rate-limited") and problem["retry_after"] == int(
        refused.headers["Retry-After"]
    )
    # The form shares the budget and answers a page a person can read.
    session, fields = form_session(webs[0].url)
    page = session.post(webs[0].url + "/signup", data=body() | fields, allow_redirects=False, timeout=10)
    assert page.status_code == 429 and page.headers["Content-Type"].startswith("text/html")
    assert "try again in" in page.text and int(page.headers["Retry-After"]) >= 1


@pytest.mark.parametrize("trusted", [1, 0], ids=["one-trusted-proxy", "control-no-trusted-proxy"])
def test_the_client_behind_a_trusted_proxy_is_the_right_most_untrusted_hop(replicas, redis_url, trusted):
    """Behind one trusted proxy, clients are told apart by the hop it appended: 12 clients get
    a signup each, and one client cannot escape its budget by prepending made-up hops. The
    control trusts no proxy: all of it is one client (the peer), so X-Forwarded-For buys nothing."""
    [web] = replicas.start(
        1,
        OFFLOAD_WEB_SIGNUP_LIMIT_PER_CLIENT="3/minute",
        OFFLOAD_WEB_RATE_LIMIT_STORAGE=redis_url,
        OFFLOAD_WEB_TRUSTED_PROXIES=str(trusted),
    )
    clients = [spray([web], 1, headers={"X-Forwarded-For": f"198.51.100.{i}"})[0] for i in range(12)]
    spoofing = [spray([web], 1, headers={"X-Forwarded-For": f"10.0.0.{i}, 203.0.113.7"})[0] for i in range(6)]
    if not trusted:
        assert statuses(clients + spoofing) == {202: 3, 429: 15}
        return
    assert statuses(clients) == {202: 12}
    assert statuses(spoofing) == {202: 3, 429: 3}


@pytest.mark.parametrize("limited", [True, False], ids=["per-domain", "control-off"])
def test_accepted_signups_per_recipient_domain_are_limited(replicas, redis_url, limited):
    """Five accepted signups a minute for one domain (from clients the proxy tells apart):
    the sixth is a 429 that names the domain limit, another domain is untouched, and refused
    signups for the domain (422) do not use its budget. The control has no domain limit."""
    [web] = replicas.start(
        1,
        OFFLOAD_WEB_SIGNUP_LIMIT_PER_DOMAIN="5/minute" if limited else "off",
        OFFLOAD_WEB_RATE_LIMIT_STORAGE=redis_url,
    )
    invalid = spray([web], 8, json={"name": "", "email": "x@example.net", "fruit": "kiwi"})
    assert statuses(invalid) == {422: 8}
    same_domain = [spray([web], 1, json=body("example.net"))[0] for _ in range(8)]
    other_domain = spray([web], 2, json=body("example.org"))
    if not limited:
        assert statuses(same_domain) == {202: 8}
        return
    assert statuses(same_domain) == {202: 5, 429: 3}
    assert "recipient domain" in same_domain[-1].json()["detail"]
    assert statuses(other_domain) == {202: 2}


def test_a_lost_limit_store_keeps_signups_flowing_with_per_worker_limits(replicas, redis_server):
    """Redis unreachable (a port nothing listens on): signups are still accepted, and each
    worker falls back to counting in memory, so the client is still limited."""
    from offload_testkit.processes import free_port

    [web] = replicas.start(
        1,
        OFFLOAD_WEB_SIGNUP_LIMIT_PER_CLIENT="3/minute",
        OFFLOAD_WEB_RATE_LIMIT_STORAGE=f"redis://127.0.0.1:{free_port()}/0",
    )
    counted = statuses(spray([web], 20))
    assert set(counted) == {202, 429} and 3 <= counted[202] <= 6, counted
