"""Validation and error answers, in-process with Flask's test client: no server, no broker.

The app gets a real publisher that was never started: a request that tried to publish
would fail (PublisherClosed, answered 503), so every 4xx asserted here also shows that
nothing was published. What publishing does is tested against the real broker under
gunicorn (test_api.py, test_broker_outage.py).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest
from flask.testing import FlaskClient

from offload_core.config import CoreConfig
from offload_core.publisher import Publisher
from offload_testkit.forms import hidden_fields
from offload_web.app import create_app
from offload_web.config import WebConfig

GOOD = {"name": "Ada Lovelace", "email": "Ada@Example.COM", "fruit": "kiwi"}
IMPORT_TOKEN = "import-token-" + "x" * 32
IMPORT = {"Authorization": f"Bearer {IMPORT_TOKEN}"}


def make_client(**settings) -> FlaskClient:
    core = CoreConfig(service_name="web")
    # Rate limits off: these tests send many requests from one client (test_rate_limits.py
    # checks the limits under gunicorn).
    config = WebConfig(analytics=False, client_limit=None, domain_limit=None, **settings)
    return create_app(Publisher(core), config, core).test_client()


@pytest.fixture(scope="module")
def client() -> Iterator[FlaskClient]:
    yield make_client(batch_limit=3, batch_token=IMPORT_TOKEN)


def problem_of(response) -> dict:
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json(force=True)
    assert body["status"] == response.status_code
    return body


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ({}, {"name", "email", "fruit"}),
        ({"name": "", "email": "a@example.com", "fruit": "kiwi"}, {"name"}),
        ({"name": "x" * 76, "email": "a@example.com", "fruit": "kiwi"}, {"name"}),
        ({"name": "Eve\r\nBcc: all@example.com", "email": "a@example.com", "fruit": "kiwi"}, {"name"}),
        ({"name": "Eve\nX", "email": "a@example.com", "fruit": "kiwi"}, {"name"}),
        ({"name": "Eve\u2028X", "email": "a@example.com", "fruit": "kiwi"}, {"name"}),
        # A lone surrogate is valid JSON text ("\\ud800") but no character: it cannot be encoded.
        ({"name": "Eve\ud800", "email": "a@example.com", "fruit": "kiwi"}, {"name"}),
        ({"name": "Eve", "email": "a\udfff@example.com", "fruit": "kiwi"}, {"email"}),
        ({"name": "Eve", "email": "not-an-email", "fruit": "kiwi"}, {"email"}),
        ({"name": "Eve", "email": "a@example.com\r\nBcc: x@example.com", "fruit": "kiwi"}, {"email"}),
        ({"name": "Eve", "email": "a" * 250 + "@example.com", "fruit": "kiwi"}, {"email"}),
        ({"name": "Eve", "email": "a@example.com", "fruit": "durian"}, {"fruit"}),
        ({"name": 42, "email": ["a@example.com"], "fruit": None}, {"name", "email", "fruit"}),
        ({"name": "Eve", "email": "a@example.com", "fruit": "kiwi", "admin": True}, {"(body)"}),
        ([1, 2], {"(body)"}),
        ("just a string", {"(body)"}),
    ],
)
def test_invalid_input_is_422_naming_each_field(client, body, fields):
    response = client.post("/api/v1/signups", json=body)
    assert response.status_code == 422
    assert {e["name"] for e in problem_of(response)["errors"]} == fields


@pytest.mark.parametrize(
    ("method", "path", "kwargs", "status"),
    [
        ("post", "/api/v1/signups", {"data": "{not json", "content_type": "application/json"}, 400),
        ("post", "/api/v1/signups", {"data": "", "content_type": "application/json"}, 400),
        ("post", "/api/v1/signups", {"data": "name=x", "content_type": "text/plain"}, 415),
        ("post", "/api/v1/signups", {"data": "x" * 70_000, "content_type": "application/json"}, 413),
        ("get", "/api/v1/signups", {}, 405),
        ("get", "/api/v1/nothing-here", {}, 404),
    ],
)
def test_protocol_errors_are_problem_json(client, method, path, kwargs, status):
    response = client.open(path, method=method.upper(), **kwargs)
    assert response.status_code == status
    problem_of(response)
    if status == 405:
        assert "POST" in response.headers["Allow"].split(", ")


@pytest.mark.parametrize("key", ["", "a b", "x" * 256, "caf\u00e9"])
def test_an_unusable_idempotency_key_is_a_400(client, key):
    response = client.post("/api/v1/signups", json=GOOD, headers={"Idempotency-Key": key})
    assert response.status_code == 400
    assert problem_of(response)["type"].endswith("invalid-idempotency-key")


def test_a_batch_over_the_limit_or_with_one_bad_item_is_refused_whole(client):
    too_many = client.post("/api/v1/signups:batch", json=[GOOD] * 4, headers=IMPORT)
    assert too_many.status_code == 422 and problem_of(too_many)["limit"] == 3
    one_bad = client.post("/api/v1/signups:batch", json=[GOOD, GOOD | {"fruit": "durian"}], headers=IMPORT)
    assert one_bad.status_code == 422
    assert [e["name"] for e in problem_of(one_bad)["errors"]] == ["[1].fruit"]
    empty = client.post("/api/v1/signups:batch", json=[], headers=IMPORT)
    assert [e["name"] for e in problem_of(empty)["errors"]] == ["(body)"]


@pytest.mark.parametrize(
    "authorization",
    [None, "", "Bearer", "Bearer wrong-token", f"Basic {IMPORT_TOKEN}", f"Bearer {IMPORT_TOKEN}x"],
)
def test_a_batch_without_the_import_token_is_a_401(client, authorization):
    headers = {} if authorization is None else {"Authorization": authorization}
    response = client.post("/api/v1/signups:batch", json=[GOOD], headers=headers)
    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert problem_of(response)["type"].endswith("unauthorized")


def test_batch_imports_are_off_unless_a_token_is_configured():
    response = make_client().post("/api/v1/signups:batch", json=[GOOD], headers=IMPORT)
    assert response.status_code == 404
    assert "OFFLOAD_WEB_BATCH_TOKEN" in problem_of(response)["detail"]


def test_a_form_with_errors_is_a_400_page_that_keeps_the_values_escaped(client):
    fields = hidden_fields(client.get("/").get_data(as_text=True))
    response = client.post("/signup", data=GOOD | fields | {"name": "<script>x</script>", "email": "nope"})
    assert response.status_code == 400 and response.mimetype == "text/html"
    page = response.get_data(as_text=True)
    assert "&lt;script&gt;" in page and "<script>x" not in page


def test_html_errors_are_pages_and_every_answer_carries_a_request_id(client):
    missing = client.get("/no-such-page", headers={"X-Request-ID": "req-1"})
    assert missing.status_code == 404 and missing.mimetype == "text/html"
    assert missing.headers["X-Request-ID"] == "req-1"
    invented = client.get("/healthz", headers={"X-Request-ID": "not ok!"}).headers["X-Request-ID"]
    assert invented != "not ok!" and len(invented) == 32


def test_readiness_says_why_the_web_is_not_ready(client):
    response = client.get("/readyz")
    assert response.status_code == 503 and response.get_json()["status"] == "not ready"


def test_an_unexpected_error_is_a_500_problem_without_a_trace():
    core = CoreConfig(service_name="web")
    app = create_app(Publisher(core), WebConfig(analytics=False), core)

    @app.get("/api/v1/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    response = app.test_client().get("/api/v1/boom")
    assert response.status_code == 500
    assert "secret" not in response.get_data(as_text=True)
    assert problem_of(response)["type"].endswith("/internal")


def test_pages_carry_a_policy_without_script_whose_nonce_is_the_pages_style(client):
    for path in ("/", "/thanks", "/no-such-page"):
        response = client.get(path)
        policy = response.headers["Content-Security-Policy"]
        assert "frame-ancestors 'none'" in policy and "script-src" not in policy
        assert response.headers["Referrer-Policy"] == "no-referrer"
        nonce = re.search(r"'nonce-([^']+)'", policy).group(1)
        assert f'<style nonce="{nonce}">' in response.get_data(as_text=True)
    first, second = (client.get("/").headers["Content-Security-Policy"] for _ in range(2))
    assert first != second  # a nonce per answer
