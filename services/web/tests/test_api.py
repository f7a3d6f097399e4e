"""Web under real gunicorn against the private broker: the JSON API and the form."""

from __future__ import annotations

import json
import re
import time

import requests

from offload_core.contracts import default_contracts
from offload_testkit.amqp import ready_count, take
from offload_testkit.forms import form_session
from offload_testkit.stack import IMPORT_HEADERS

GOOD = {"name": "Ada Lovelace", "email": "Ada@Example.COM", "fruit": "kiwi"}


def post(web, path, body=None, headers=None, **kwargs):
    if path.endswith(":batch"):
        headers = IMPORT_HEADERS | (headers or {})
    return requests.post(web.url(path), json=body, timeout=10, headers=headers, **kwargs)


def test_accepted_signup_puts_exactly_one_valid_message_on_each_bound_queue(web, amqp_url):
    """The mailer gets the signup (name and address); stats gets what it counts of it and
    nothing personal."""
    response = post(web, "/api/v1/signups", GOOD, headers={"X-Request-ID": "req-abc-1"})
    assert response.status_code == 202
    body = response.json()
    assert body["status"] == "queued"
    assert response.headers["X-Request-ID"] == "req-abc-1"
    expected = {
        "mailer.signups.high": (
            "signup.created",
            body["id"],
            {"name": "Ada Lovelace", "email": "Ada@example.com", "fruit": "kiwi", "lane": "high"},
        ),
        "stats.activity": (
            "signup.accepted",
            f"signup.accepted-{body['id']}",
            {"signup_id": body["id"], "fruit": "kiwi", "lane": "high"},
        ),
    }
    for queue, (message_type, message_id, data) in expected.items():
        [message] = take(amqp_url, queue, expect=1)
        envelope = message.json()
        default_contracts().check_envelope(envelope)
        assert (envelope["type"], envelope["id"], envelope["data"]) == (message_type, message_id, data)
        assert message.properties.message_id == message_id
        assert message.properties.correlation_id == "req-abc-1"
        assert take(amqp_url, queue) == []
        if queue.startswith("stats."):
            assert b"Ada" not in message.body and b"example.com" not in message.body
    assert ready_count(amqp_url, "mailer.signups.low") == 0


def test_batch_goes_to_the_low_lane_and_is_all_or_nothing(web, amqp_url):
    items = [GOOD | {"name": f"Person {i}", "email": f"person{i}@example.com"} for i in range(5)]
    response = post(web, "/api/v1/signups:batch", items)
    assert response.status_code == 202
    ids = response.json()["ids"]
    got = take(amqp_url, "mailer.signups.low", expect=5)
    assert [g.properties.message_id for g in got] == ids

    bad = items[:2] + [GOOD | {"email": "nope"}]
    response = post(web, "/api/v1/signups:batch", bad)
    assert response.status_code == 422
    assert [e["name"] for e in response.json()["errors"]] == ["[2].email"]
    too_many = post(web, "/api/v1/signups:batch", [GOOD] * 101)
    assert too_many.status_code == 422
    assert too_many.json()["limit"] == 100
    assert take(amqp_url, "mailer.signups.low") == []


def test_a_batch_naming_one_address_twice_is_refused_whole(web, amqp_url):
    """One welcome per address: a batch that repeats a mailbox (in any case of its domain,
    or its domain in Unicode and in ASCII) is a 422 naming each repeat. Its control: the
    same batch with the repeats given their own addresses is accepted."""
    items = [
        GOOD | {"email": "ada@bücher.example"},
        GOOD | {"email": "bob@example.com"},
        GOOD | {"email": "Ada@XN--BCHER-KVA.example"},
        GOOD | {"email": "BOB@example.com"},
    ]
    response = post(web, "/api/v1/signups:batch", items)
    assert response.status_code == 422, response.text
    assert response.json()["errors"] == [
        {"name": "[2].email", "reason": "names the same address as [0]"},
        {"name": "[3].email", "reason": "names the same address as [1]"},
    ]
    assert take(amqp_url, "mailer.signups.low") == []
    items[2:] = [GOOD | {"email": "cy@example.com"}, GOOD | {"email": "di@example.com"}]
    assert post(web, "/api/v1/signups:batch", items).status_code == 202
    got = [g.json()["data"]["email"] for g in take(amqp_url, "mailer.signups.low", expect=4)]
    assert got[0] == "ada@xn--bcher-kva.example"  # the ASCII form a relay without SMTPUTF8 takes


def test_unicode_names_are_welcome(web, amqp_url):
    response = post(web, "/api/v1/signups", GOOD | {"name": "Zoë Ōkubo 名前"})
    assert response.status_code == 202
    [message] = take(amqp_url, "mailer.signups.high", expect=1)
    assert message.json()["data"]["name"] == "Zoë Ōkubo 名前"


def test_form_flow_redirects_and_reports_field_errors_escaped(web, amqp_url):
    page = requests.get(web.url("/"), timeout=10)
    assert page.status_code == 200
    assert '<label for="fruit">' in page.text and "<script" not in page.text

    session, fields = form_session(web.base_url)
    ok = session.post(web.url("/signup"), data=GOOD | fields, allow_redirects=False, timeout=10)
    assert ok.status_code == 303 and ok.headers["Location"] == "/thanks"
    assert len(take(amqp_url, "mailer.signups.high", expect=1)) == 1

    bad = session.post(
        web.url("/signup"),
        data={"name": "<script>alert(1)</script>", "email": "x", "fruit": "kiwi", **fields},
        timeout=10,
    )
    assert bad.status_code == 400
    assert "<script>alert(1)</script>" not in bad.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in bad.text
    assert 'id="email-error"' in bad.text and 'id="name-error"' not in bad.text
    assert ready_count(amqp_url, "mailer.signups.high") == 0


def test_every_request_is_reported_once_without_secrets(web, amqp_url):
    secret_headers = {
        "Cookie": "session=SECRET-COOKIE",
        "Authorization": "Bearer SECRET-TOKEN",
        "X-Api-Key": "SECRET-KEY",
        "User-Agent": "pytest-agent/1.0",
        "Referer": "http://example.com/page?token=SECRET-REF",
    }
    for path in ("/", "/thanks", "/nope"):
        requests.get(web.url(path), headers=secret_headers, timeout=10)
    for path in ("/healthz", "/metrics", "/readyz"):  # probes and scrapes are not reported
        requests.get(web.status(path), headers=secret_headers, timeout=10)
    # A path the app has no route for is reported as (unmatched); a given request id as given.
    requests.get(web.url("/caf%C3%A9"), headers={"X-Request-ID": "given-42"}, timeout=10)
    # One http.request.batch event per worker per quarter second: the three reported
    # requests arrive in one to three events (two gunicorn workers).
    events = take(amqp_url, "stats.requests", expect=1)
    time.sleep(1.0)  # give the other worker's batch, and any stray report, time to arrive
    events += take(amqp_url, "stats.requests")
    reports = []
    for event in events:
        assert "SECRET" not in event.body.decode()
        default_contracts().check_envelope(event.json())
        assert event.json()["type"] == "http.request.batch"
        reports += event.json()["data"]["requests"]
    # Only bounded values: the matched route (any other path is one key) and the agent's family.
    assert sorted((r["path"], r["status"], r["user_agent"]) for r in reports) == [
        ("(unmatched)", 404, "other"),
        ("(unmatched)", 404, "python"),
        ("/", 200, "other"),
        ("/thanks", 200, "other"),
    ]
    assert len({r["id"] for r in reports}) == 4
    [given] = [r for r in reports if r["user_agent"] == "python"]
    assert given["request_id"] == "given-42"
    for data in reports:
        if data is given:
            continue
        assert data["headers"]["referer"] == "http://example.com/page"
        assert len(data["request_id"]) == 32  # generated, as no X-Request-ID was sent
        assert data["duration_ms"] > 0
    assert "café" not in str(reports) and "nope" not in str(reports)


def test_health_metrics_and_openapi(web):
    assert requests.get(web.status("/healthz"), timeout=5).json() == {"status": "ok"}
    assert requests.get(web.status("/readyz"), timeout=5).status_code == 200
    for path in ("/healthz", "/readyz", "/metrics"):  # never on the routed port
        answer = requests.get(web.url(path), timeout=5)
        assert answer.status_code == 404 and "offload_" not in answer.text and "ready" not in answer.text
    for _ in range(4):
        requests.get(web.url("/"), timeout=5)
    metrics = requests.get(web.status("/metrics"), timeout=5).text
    # Both gunicorn workers' samples are merged by the multiprocess collector.
    counts = [
        float(line.split()[-1])
        for line in metrics.splitlines()
        if line.startswith("offload_web_request_duration_seconds_count") and 'route="/"' in line
    ]
    assert sum(counts) == 4
    assert requests.get(web.status("/"), timeout=5).status_code == 404  # pages: public port only
    spec = requests.get(web.url("/openapi.json"), timeout=5).json()
    assert spec["openapi"] == "3.1.0"
    assert set(spec["paths"]) == {"/api/v1/signups", "/api/v1/signups:batch"}
    json.dumps(spec)


def test_a_retry_with_the_same_idempotency_key_is_the_same_signup(web, amqp_url):
    headers = {"Idempotency-Key": '"retry-after-503-1"'}
    first = post(web, "/api/v1/signups", GOOD, headers=headers)
    again = post(web, "/api/v1/signups", GOOD, headers={"Idempotency-Key": "retry-after-503-1"})
    other = post(web, "/api/v1/signups", GOOD | {"fruit": "pear"}, headers=headers)
    unkeyed = [post(web, "/api/v1/signups", GOOD) for _ in range(2)]
    assert {r.status_code for r in (first, again, other, *unkeyed)} == {202}
    # sf-string or bare, the same key and body give the same id; another body, another id.
    assert first.json()["id"] == again.json()["id"]
    assert other.json()["id"] != first.json()["id"]
    assert unkeyed[0].json()["id"] != unkeyed[1].json()["id"]
    ids = [g.properties.message_id for g in take(amqp_url, "mailer.signups.high", expect=5)]
    assert ids.count(first.json()["id"]) == 2  # the mailer's sent-store makes it one email

    batch = [GOOD | {"name": f"Person {i}", "email": f"p{i}@example.com"} for i in range(3)]
    keyed = {"Idempotency-Key": "import-7"}
    one = post(web, "/api/v1/signups:batch", batch, headers=keyed).json()["ids"]
    two = post(web, "/api/v1/signups:batch", batch, headers=keyed).json()["ids"]
    assert one == two and len(set(one)) == 3


def test_the_form_carries_a_token_so_a_resubmission_is_the_same_signup(web, amqp_url):
    session, fields = form_session(web.base_url)
    token = fields["idempotency_key"]
    assert re.fullmatch("[0-9a-f]{32}", token)
    assert token not in requests.get(web.url("/"), timeout=10).text  # one per render
    for _ in range(2):
        sent = session.post(web.url("/signup"), data=GOOD | fields, allow_redirects=False, timeout=10)
        assert sent.status_code == 303
    ids = [g.properties.message_id for g in take(amqp_url, "mailer.signups.high", expect=2)]
    assert len(ids) == 2 and ids[0] == ids[1]
    # A form with errors keeps its token, so fixing the field and sending again is still one signup.
    bad = session.post(web.url("/signup"), data=GOOD | fields | {"email": "x"}, timeout=10)
    assert bad.status_code == 400 and f'value="{token}"' in bad.text


def test_a_forged_form_post_is_refused(web, amqp_url):
    """A page elsewhere posting the form in a visitor's browser has neither the visitor's
    session cookie nor a token signed for it: 400, nothing published. Its control: the same
    post from the session that was given the form is accepted."""
    session, fields = form_session(web.base_url)
    forged = [
        requests.post(web.url("/signup"), data=GOOD | fields, allow_redirects=False, timeout=10),  # no cookie
        session.post(web.url("/signup"), data=GOOD, allow_redirects=False, timeout=10),  # no token
        session.post(
            web.url("/signup"),
            data=GOOD | fields | {"csrf_token": "x" + fields["csrf_token"][1:]},
            timeout=10,
        ),
    ]
    assert [f.status_code for f in forged] == [400, 400, 400]
    assert "CSRF" in forged[0].text and ready_count(amqp_url, "mailer.signups.high") == 0
    accepted = session.post(web.url("/signup"), data=GOOD | fields, allow_redirects=False, timeout=10)
    assert accepted.status_code == 303
