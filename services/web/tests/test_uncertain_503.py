"""The uncertain 503, as the README states it: a signup the broker took but whose confirm
never reached the web (its connection dropped first) is answered 503 with its id in
`uncertain_ids`; a retry with the same Idempotency-Key is the same signup and is mailed
once. Real gunicorn, the private broker behind a proxy that places the fault, a real
mailer and SMTP sink.
"""

from __future__ import annotations

import collections
from collections.abc import Iterator

import pytest
import requests

from offload_testkit.amqp import ready_count, take, wait_for
from offload_testkit.forms import form_session, hidden_fields
from offload_testkit.stack import start_mailer, start_web
from offload_testkit.tcp_proxy import TcpProxy

from .conftest import web_env

pytestmark = pytest.mark.slow

QUEUE = "mailer.signups.high"
BODY = {"name": "Uncertain Ursula", "email": "ursula@example.com", "fruit": "kiwi"}


@pytest.fixture
def proxy(rabbitmq_broker) -> Iterator[TcpProxy]:
    proxied = TcpProxy("127.0.0.1", rabbitmq_broker.amqp_port)
    yield proxied
    proxied.close()


@pytest.fixture
def web(core_config, proxy, tmp_path):
    # One worker: the request and the fault meet on one broker connection.
    env = web_env(core_config, OFFLOAD_AMQP_URL=proxy.route(core_config.amqp_url), OFFLOAD_WEB_WORKERS="1")
    service = start_web(env | {"OFFLOAD_CONFIRM_TIMEOUT": "20"}, tmp_path)
    yield service
    service.terminate()


def uncertain_signup(web, proxy, amqp_url: str, post=requests.post, **request) -> requests.Response:
    """Post while the broker's answers are swallowed; once the message is on the queue (the
    broker took it), drop the connection: the web never hears the confirm."""
    import threading

    proxy.swallow_to_client = True
    before = ready_count(amqp_url, QUEUE)
    answer: list[requests.Response] = []
    thread = threading.Thread(target=lambda: answer.append(post(timeout=30, **request)))
    thread.start()
    wait_for(lambda: ready_count(amqp_url, QUEUE) > before, timeout=15, what="the signup on the queue")
    proxy.cut()  # every connection dropped, and nothing swallowed any more
    thread.join(30)
    assert answer, "no answer to the signup"
    wait_for(
        lambda: requests.get(web.status_url + "/readyz", timeout=5).ok, timeout=30, what="the web reconnected"
    )
    return answer[0]


@pytest.mark.parametrize("retry_with_key", [True, False], ids=["same-key", "control-no-key"])
def test_an_uncertain_503_retried_with_its_key_is_the_same_signup_mailed_once(
    web, proxy, core_config, amqp_url, smtp_sink, tmp_path, retry_with_key
):
    headers = {"Idempotency-Key": "retry-after-uncertain-1"}
    first = uncertain_signup(
        web, proxy, amqp_url, url=web.url + "/api/v1/signups", json=BODY, headers=headers
    )
    assert first.status_code == 503 and first.headers["Retry-After"]
    [uncertain_id] = first.json()["uncertain_ids"]
    retry = requests.post(
        web.url + "/api/v1/signups", json=BODY, headers=headers if retry_with_key else {}, timeout=10
    )
    assert retry.status_code == 202
    assert (retry.json()["id"] == uncertain_id) is retry_with_key
    # The queue holds the uncertain copy and the retry's; one mailer drains both.
    mailer = start_mailer(
        {
            "OFFLOAD_AMQP_URL": core_config.amqp_url,
            "OFFLOAD_DELAY_TIERS": ",".join(str(d) for d in core_config.delay_tiers),
            "OFFLOAD_MAILER_BACKEND": "smtp",
            "OFFLOAD_SMTP_PORT": str(smtp_sink.port),
            "OFFLOAD_MAILER_STORE_URL": f"sqlite:///{tmp_path}/sent.db",
        },
        tmp_path,
    )
    try:
        outcomes = [g.json() for g in take(amqp_url, "stats.activity", expect=4, timeout=30)]
    finally:
        mailer.terminate()
    assert smtp_sink.copies_by_recipient() == {"ursula@example.com": 1}
    settled = collections.Counter(e["type"] for e in outcomes if e["type"] != "signup.accepted")
    if retry_with_key:
        # One signup: its two copies give one mail; the second copy re-announces mail.sent.
        signup_ids = {e["data"]["signup_id"] for e in outcomes}
        assert signup_ids == {uncertain_id}
        assert settled == {"mail.sent": 2}, settled
    else:
        # Two signups for one address: the second is suppressed, not mailed again.
        assert settled == {"mail.sent": 1, "mail.suppressed": 1}, settled


def test_the_503_page_of_an_uncertain_form_signup_resends_its_token(web, proxy, amqp_url):
    session, fields = form_session(web.url)
    page = uncertain_signup(
        web, proxy, amqp_url, url=web.url + "/signup", data=BODY | fields, post=session.post
    )
    assert page.status_code == 503 and "Try again" in page.text
    resent = hidden_fields(page.text)  # what the page's "Try again" button sends
    assert resent["idempotency_key"] == fields["idempotency_key"]
    again = session.post(web.url + "/signup", data=BODY | resent, allow_redirects=False, timeout=10)
    assert again.status_code == 303
    ids = [g.properties.message_id for g in take(amqp_url, QUEUE, expect=2)]
    assert len(ids) == 2 and len(set(ids)) == 1  # the uncertain copy and the retry: one signup
