"""The read API and the page, on a real SQLite store (Flask's test client) and under gunicorn."""

from __future__ import annotations

import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from offload_core.envelope import Envelope
from offload_stats.api import create_app
from offload_stats.counting import increments
from offload_stats.store import SqliteStatsStore
from offload_testkit.messages import request_event, signup_accepted
from offload_testkit.stack import start_stats_api


@pytest.fixture
def filled(tmp_path):
    path = tmp_path / "stats.db"
    store = SqliteStatsStore(str(path))
    events = [request_event("/<b>", "firefox"), request_event("/x", "curl"), request_event("/<b>", "curl")]
    events += [signup_accepted(fruit="kiwi"), signup_accepted(fruit="pear", lane="low")]
    events += [welcome_sent("kiwi-1", after_seconds=3)]
    store.apply([increments(e) for e in events])
    return store, path


def welcome_sent(signup_id: str, *, after_seconds: int) -> Envelope:
    """A mail.sent v2 sent now for a signup accepted `after_seconds` earlier."""
    now = time.time()

    def iso(t: float) -> str:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")

    data = {"signup_id": signup_id, "fruit": "kiwi", "accepted_at": iso(now - after_seconds)}
    return Envelope("mail.sent", data, version=2, occurred_at=iso(now))


def test_summary_lists_and_timeseries(filled):
    client = create_app(filled[0]).test_client()
    assert client.get("/api/v1/stats").json["requests"]["total"] == 3
    assert client.get("/api/v1/stats/user-agents?limit=1").json == {
        "items": [{"user_agent": "curl", "count": 2}]
    }
    assert client.get("/api/v1/stats/paths").json["items"][0] == {"path": "/<b>", "count": 2}
    series = client.get("/api/v1/stats/timeseries?metric=signups&minutes=5").json
    assert len(series["points"]) == 5 and series["points"][-1]["count"] == 2
    delays = client.get("/api/v1/stats/welcome-delay?minutes=3").json
    assert delays["minutes"] == 3 and len(delays["points"]) == 3
    latest = delays["points"][-1]
    # One mail 3 s after its signup: in the (2 s, 5 s] bucket, read by interpolation.
    assert latest["mails"] == 1 and 2 < latest["p50_seconds"] <= latest["p95_seconds"] <= 5
    assert delays["points"][0] == {
        "minute": delays["points"][0]["minute"],
        "mails": 0,
        "p50_seconds": None,
        "p95_seconds": None,
    }


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/api/v1/stats/user-agents?limit=0", "limit"),
        ("/api/v1/stats/user-agents?limit=101", "limit"),
        ("/api/v1/stats/paths?limit=abc", "limit"),
        ("/api/v1/stats/timeseries?metric=bogus", "metric"),
        ("/api/v1/stats/timeseries?metric=", "metric"),
        ("/api/v1/stats/timeseries?minutes=0", "minutes"),
        ("/api/v1/stats/timeseries?minutes=99999", "minutes"),
        ("/api/v1/stats/user-agents?limit=&limit=5", "limit"),
        ("/api/v1/stats/timeseries?metric=requests&metric=signups", "metric"),
        ("/api/v1/stats/welcome-delay?minutes=0", "minutes"),
        ("/api/v1/stats/welcome-delay?minutes=x", "minutes"),
    ],
)
def test_bad_parameters_are_problem_json_naming_the_parameter(filled, url, name):
    response = create_app(filled[0]).test_client().get(url)
    assert response.status_code == 400
    assert response.mimetype == "application/problem+json"
    assert response.json["errors"][0]["name"] == name


def test_unknown_paths_and_methods_are_problem_json(filled):
    client = create_app(filled[0]).test_client()
    assert client.get("/api/v1/nope").status_code == 404
    not_allowed = client.post("/api/v1/stats")
    assert not_allowed.status_code == 405
    assert not_allowed.mimetype == "application/problem+json"
    assert set(not_allowed.headers["Allow"].split(", ")) >= {"GET", "HEAD"}  # RFC 9110


@pytest.fixture
def stats_api(filled, tmp_path):
    _, path = filled
    service = start_stats_api({"OFFLOAD_STATS_STORE_URL": f"sqlite:///{path}"}, tmp_path)
    yield service.url
    assert service.terminate() == 0


def test_status_paths_answer_on_the_status_port_only(filled, tmp_path):
    service = start_stats_api({"OFFLOAD_STATS_STORE_URL": f"sqlite:///{filled[1]}"}, tmp_path)
    try:
        for path in ("/metrics", "/readyz", "/healthz"):
            assert requests.get(service.status_url + path, timeout=5).status_code == 200
            assert requests.get(service.url + path, timeout=5).status_code == 404
        assert requests.get(service.status_url + "/stats", timeout=5).status_code == 404
        assert requests.get(service.url + "/stats", timeout=5).status_code == 200
    finally:
        assert service.terminate() == 0


def test_page_renders_under_gunicorn_with_escaped_labels_and_no_scripts(stats_api):
    page = requests.get(f"{stats_api}/stats", timeout=5)
    assert page.status_code == 200
    assert "<svg" in page.text and "<script" not in page.text
    policy = page.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src" not in policy
    assert f'<style nonce="{policy.split("nonce-")[1].split(chr(39))[0]}">' in page.text
    assert "/&lt;b&gt;" in page.text
    assert "Signup to welcome email" in page.text and "1 mail, p50" in page.text
    assert requests.get(f"{stats_api}/api/v1/stats", timeout=5).json()["signups"]["total"] == 2


@pytest.mark.browser
def test_page_screenshot_in_headless_chromium(stats_api, tmp_path):
    """Renders /stats in Debian's chromium (installed by scripts/system-deps.sh) and checks the PNG."""
    shot = tmp_path / "stats.png"
    flags = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--no-first-run",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'chrome'}",
    ]
    command = ["chromium", *flags, f"--screenshot={shot}", "--window-size=1200,900", f"{stats_api}/stats"]
    subprocess.run(command, capture_output=True, timeout=90, check=True)
    png = shot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000


def test_stats_api_conforms_to_its_openapi(stats_api):
    """schemathesis' CLI against the running API's /openapi.json under gunicorn: no 5xx, and
    every status, content type, header and body matches the spec (its pytest plugin does not
    load under pytest 9)."""
    schemathesis = Path(sys.executable).with_name("schemathesis")
    result = subprocess.run(
        [str(schemathesis), "run", f"{stats_api}/openapi.json", "--checks", "all"]
        + ["--max-examples", "40", "--seed", "1"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
