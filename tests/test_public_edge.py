"""The public edge as a stranger meets it: the web under gunicorn with its default limits,
the mailer against an SMTP sink that keeps every copy, stats counting, all on the private
broker and a real Redis."""

from __future__ import annotations

import collections
import concurrent.futures
import random
import string

import pytest
import redis
import requests

from offload_core.agents import FAMILIES
from offload_testkit.amqp import wait_for
from offload_testkit.messages import publish_all, request_event
from offload_testkit.stack import start_mailer, start_stats_api, start_stats_runner, start_web

pytestmark = pytest.mark.slow

SIGNUPS = 40


@pytest.mark.parametrize("welcome_once", [True, False], ids=["one-welcome", "control-claim-off"])
def test_forty_signups_for_one_address_from_forty_clients_mail_it_once(
    core_config, smtp_sink, redis_url, tmp_path, welcome_once
):
    """Forty clients (told apart through one trusted proxy, so the per-client limit lets each
    in) sign one address up at once, with the default limits: forty 202s, one welcome, and
    stats counts one mail sent and 39 suppressed. The control switches the mailer's address
    claim off and the same stack mails the address forty times."""
    env = {
        "OFFLOAD_AMQP_URL": core_config.amqp_url,
        "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in core_config.delay_tiers),
    }
    web_env = {
        # The web's own defaults, counted in Redis, behind one trusted proxy.
        "OFFLOAD_WEB_SIGNUP_LIMIT_PER_CLIENT": "10/minute;60/hour",
        "OFFLOAD_WEB_SIGNUP_LIMIT_PER_DOMAIN": "60/minute;600/hour",
        "OFFLOAD_WEB_RATE_LIMIT_STORAGE": redis_url,
        "OFFLOAD_WEB_TRUSTED_PROXIES": "1",
    }
    mailer_env = {
        "OFFLOAD_MAILER_BACKEND": "smtp",
        "OFFLOAD_SMTP_HOST": "127.0.0.1",
        "OFFLOAD_SMTP_PORT": str(smtp_sink.port),
        "OFFLOAD_MAILER_STORE_URL": redis_url,
        "OFFLOAD_WORKER_THREADS": "4",
    }
    if not welcome_once:
        mailer_env["OFFLOAD_MAILER_WELCOME_ONCE_DAYS"] = "0"
    stats_env = {"OFFLOAD_STATS_STORE_URL": f"sqlite:///{tmp_path}/stats.db"}
    smtp_sink.delay = 0.05
    services = [
        start_web(env | web_env, tmp_path),
        start_mailer(env | mailer_env, tmp_path),
        start_stats_runner(env | stats_env, tmp_path),
        start_stats_api(stats_env, tmp_path),
    ]
    web, _, _, stats = services
    try:

        def sign_up(i: int) -> int:
            body = {"name": f"Client {i}", "email": "ida@Example.COM", "fruit": "pear"}
            headers = {"X-Forwarded-For": f"198.51.100.{i}"}
            return requests.post(
                f"{web.url}/api/v1/signups", json=body, headers=headers, timeout=10
            ).status_code

        with concurrent.futures.ThreadPoolExecutor(8) as pool:
            answers = collections.Counter(pool.map(sign_up, range(SIGNUPS)))
        assert answers == {202: SIGNUPS}, answers

        def mails() -> dict[str, int]:
            return requests.get(f"{stats.url}/api/v1/stats", timeout=5).json()["mails"]

        wait_for(lambda: sum(mails().values()) == SIGNUPS, timeout=60, what="every signup's outcome counted")
        counted = mails()
    finally:
        for service in services:
            service.terminate()
    copies = smtp_sink.copies_by_recipient()
    if not welcome_once:
        assert copies == {"ida@example.com": SIGNUPS}, copies
        return
    assert copies == {"ida@example.com": 1}, copies
    assert counted == {"sent": 1, "failed": 0, "suppressed": SIGNUPS - 1}
    assert "ida@" not in (tmp_path / "mailer.log").read_text().lower()  # the address is never logged


def stored_keys(store: redis.Redis) -> int:
    """Keys of the stats store, and fields of its counter hashes: what a stranger could grow."""
    keys = list(store.scan_iter("offload:stats:*"))
    return len(keys) + sum(store.hlen(k) for k in keys if store.type(k) == b"hash")


@pytest.mark.parametrize("through_the_web", [True, False], ids=["web", "control-raw-events"])
def test_four_hundred_hostile_requests_add_a_bounded_number_of_stored_keys(
    core_config, redis_url, tmp_path, stack_publisher, through_the_web
):
    """400 requests to random 2 kB paths with random user agents: through the web they become
    (unmatched) and an agent family, reported in a few batch messages, and the stats store
    grows by a handful of keys. The control publishes the same requests as the raw events a
    web without those bounds would send: the same count grows by more than 400."""
    env = {
        "OFFLOAD_AMQP_URL": core_config.amqp_url,
        "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in core_config.delay_tiers),
    }
    store = redis.Redis.from_url(redis_url)
    store.flushdb()
    services = [start_stats_runner(env | {"OFFLOAD_STATS_STORE_URL": redis_url}, tmp_path)]
    rng = random.Random(400)

    def hostile() -> tuple[str, str]:
        path = "/" + "".join(rng.choices(string.ascii_letters + string.digits, k=2047))
        agent = "x" + "".join(rng.choices(string.ascii_letters + " /.;()", k=rng.randint(1, 300))).rstrip()
        return path, agent

    try:
        before = stored_keys(store)
        if through_the_web:
            services.append(start_web(env, tmp_path))
            session = requests.Session()
            for _ in range(400):
                path, agent = hostile()
                session.get(services[1].url + path, headers={"User-Agent": agent}, timeout=10)
        else:
            publish_all(stack_publisher, [request_event(*hostile(), status=404) for _ in range(400)])

        def counted() -> int:
            return int(store.hget("offload:stats:c:requests", "total") or 0)

        wait_for(lambda: counted() == 400, timeout=60, what="400 requests counted")
        grown = stored_keys(store) - before
    finally:
        for service in services:
            service.terminate()
    print(f"400 hostile requests: {grown} stored keys and hash fields added")
    if through_the_web:
        assert grown <= 60, grown
        assert store.hkeys("offload:stats:c:path") == [b"(unmatched)"]
        assert {k.decode() for k in store.hkeys("offload:stats:c:user_agent")} <= FAMILIES
    else:
        assert grown > 400, grown
