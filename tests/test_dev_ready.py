"""`make dev`'s quiet start: services wait for the broker without a word, and one block says
where everything is, with graph links whose expressions Prometheus itself accepts."""

from __future__ import annotations

import json
import socket
import subprocess
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from offload_testkit.processes import free_port
from scripts import dev_ready

ROOT = Path(__file__).resolve().parents[1]


def test_a_service_waits_silently_for_the_broker_then_starts(tmp_path):
    port = free_port()
    marker = tmp_path / "started"
    waiting = subprocess.Popen(
        [str(ROOT / "scripts" / "dev-after-broker.sh"), "touch", str(marker)],
        env={"OFFLOAD_DEV_AMQP_PORT": str(port), "PATH": "/usr/bin:/bin"},
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip
    time.sleep(1.0)  # a second of "broker booting": the command must not have run
    assert waiting.poll() is None and not marker.exists()
    with socket.create_server(("127.0.0.1", port)):
        output, _ = waiting.communicate(timeout=10)
    assert waiting.returncode == 0 and marker.exists()
    assert output == b""  # not a line while it waited


def test_a_broker_that_never_comes_is_said_once(tmp_path):
    result = subprocess.run(
        [str(ROOT / "scripts" / "dev-after-broker.sh"), "true"],
        env={"OFFLOAD_DEV_AMQP_PORT": str(free_port()), "OFFLOAD_DEV_BROKER_WAIT": "1", "PATH": "/bin"},
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 0
    assert result.stderr.count("no broker on 127.0.0.1:") == 1


def test_the_ready_block_names_every_service_and_links_graphs_prometheus_accepts():
    message = dev_ready.ready_message(7.4, tracing=True, prometheus=True)
    assert message.startswith("offload is ready (7.4s):")
    for where in (
        "http://127.0.0.1:8000",
        "http://127.0.0.1:8001/stats",
        "8001/api/v1/stats/welcome-delay",
        "15672",
        "9090/alerts",
        "16686",
    ):
        assert where in message
    links = [word for line in message.splitlines() for word in line.split() if "/graph?" in word]
    expressions = [
        e for link in links for key, [e] in parse_qs(urlsplit(link).query).items() if key.endswith(".expr")
    ]
    assert len(expressions) == 4
    assert not promtool_accepts("sum(rate(offload_message_time_on_queue_seconds_bucket[1m])"), "a typo passes"
    for expression in expressions:
        assert promtool_accepts(expression), expression


def promtool_accepts(expression: str) -> bool:
    """promtool parses the expression as a rule's: a typo fails here, not in a browser."""
    rules = json.dumps(
        {"groups": [{"name": "g", "rules": [{"record": "offload:check", "expr": expression}]}]}
    )
    checked = subprocess.run(
        ["/usr/bin/promtool", "check", "rules", "/dev/stdin"], input=rules, capture_output=True, text=True
    )
    return checked.returncode == 0
