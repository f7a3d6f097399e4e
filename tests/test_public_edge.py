"""The public edge as a stranger meets it: the web under gunicorn with its default limits,
the mailer against an SMTP sink that keeps every copy, stats counting, all on the private
broker and a real Redis."""

from __future__ import annotations

import collections
import concurrent.futures

import pytest
import requests

from offload_testkit.amqp import wait_for
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
