"""The images on a Docker network of their own: a signup through the web's published port
(loopback only) becomes one email and a count. Needs a Docker engine: `make container-test`
builds the images (on a locally built Debian base) and runs this.
"""

from __future__ import annotations

import json
import secrets
import subprocess
import time
import uuid
from pathlib import Path

import pytest
import requests

from offload_testkit.amqp import wait_for

pytestmark = pytest.mark.containers
TAG = "dev"


def docker(*args: str, check: bool = True) -> str:
    result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=120)
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)} failed: {result.stderr}")
    return result.stdout.strip()


@pytest.fixture
def stack():
    suffix = uuid.uuid4().hex[:8]
    network, volume = f"offload-smoke-{suffix}", f"offload-stats-{suffix}"
    password = secrets.token_urlsafe(16)
    amqp = f"amqp://offload:{password}@rabbitmq-{suffix}:5672/%2F"
    names: list[str] = []
    docker("network", "create", network)
    docker("volume", "create", volume)

    def run(name: str, image: str, *args: str, entrypoint: str | None = None) -> str:
        full = f"{name}-{suffix}"
        extra = ["--entrypoint", entrypoint] if entrypoint else []
        docker("run", "-d", "--name", full, "--network", network, *extra, *args, f"{image}:{TAG}")
        names.append(full)
        return full

    def port(container: str, inner: int) -> int:
        return int(docker("port", container, str(inner)).splitlines()[0].rsplit(":", 1)[1])

    try:
        run(
            "rabbitmq",
            "offload-rabbitmq",
            "-e",
            "RABBITMQ_DEFAULT_USER=offload",
            "-e",
            f"RABBITMQ_DEFAULT_PASS={password}",
        )
        web = run(
            "web",
            "offload-web",
            "-e",
            f"OFFLOAD_AMQP_URL={amqp}",
            "-p",
            "127.0.0.1::8000",
            "-p",
            "127.0.0.1::9100",
        )
        mailer = run("mailer", "offload-mailer", "-e", f"OFFLOAD_AMQP_URL={amqp}")
        run(
            "stats",
            "offload-stats",
            "-e",
            f"OFFLOAD_AMQP_URL={amqp}",
            "-v",
            f"{volume}:/var/lib/offload",
            entrypoint="offload-stats-runner",
        )
        stats_api = run(
            "stats-api", "offload-stats", "-v", f"{volume}:/var/lib/offload", "-p", "127.0.0.1::8001"
        )
        yield {
            "web": f"http://127.0.0.1:{port(web, 8000)}",
            "web_status": f"http://127.0.0.1:{port(web, 9100)}",
            "stats": f"http://127.0.0.1:{port(stats_api, 8001)}",
            "mailer": mailer,
            "names": names,
        }
    finally:
        for name in reversed(names):
            if name.startswith(("web", "mailer", "stats")):
                logs = subprocess.run(
                    ["docker", "logs", "--tail", "30", name],
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    text=True,
                    timeout=60,
                )
                print(f"--- {name}\n{logs.stdout}")
            docker("rm", "-f", name, check=False)
        docker("volume", "rm", "-f", volume, check=False)
        docker("network", "rm", network, check=False)


def test_a_signup_through_the_containers_becomes_one_email_and_a_count(stack):
    def ready() -> bool:
        try:
            return requests.get(stack["web_status"] + "/readyz", timeout=2).ok
        except requests.RequestException:
            return False

    wait_for(ready, timeout=90, interval=1, what="web ready (broker up, topology declared)")
    body = {"name": "Container Ada", "email": "ada@example.com", "fruit": "pear"}
    response = requests.post(stack["web"] + "/api/v1/signups", json=body, timeout=10)
    assert response.status_code == 202, response.text
    signup_id = response.json()["id"]

    def outbox() -> list[str]:
        listing = docker("exec", stack["mailer"], "ls", "/var/lib/offload/outbox", check=False)
        return [name for name in listing.split() if name.endswith(".eml")]

    assert wait_for(lambda: outbox(), timeout=60, interval=1, what="the email") == [
        f"signup-{signup_id}@offload.localhost.eml"
    ]

    def counted() -> dict:
        try:
            return requests.get(stack["stats"] + "/api/v1/stats", timeout=2).json()
        except (requests.RequestException, json.JSONDecodeError):
            return {}

    wait_for(lambda: counted().get("mails", {}).get("sent") == 1, timeout=60, interval=1, what="mail counted")
    assert counted()["signups"]["by_fruit"] == {"pear": 1}

    for name in stack["names"]:
        if not name.startswith("rabbitmq"):
            assert docker("inspect", "-f", "{{.Config.User}}", name) == "10001:10001"
    # The broker image is the tree the test kit's brokers run (scripts/rabbitmq-base-image.sh).
    [broker] = [name for name in stack["names"] if name.startswith("rabbitmq")]
    version = docker("exec", broker, "rabbitmqctl", "--quiet", "version")
    script = Path(__file__).resolve().parents[2] / "scripts" / "rabbitmq-tree.sh"
    tree = subprocess.run([str(script)], capture_output=True, text=True, check=True).stdout
    print(f"broker image: RabbitMQ {version}")
    assert version == (Path(tree.strip()) / ".rabbitmq-version").read_text().strip()
    started = time.monotonic()
    docker("stop", "-t", "30", stack["mailer"])
    assert docker("inspect", "-f", "{{.State.ExitCode}}", stack["mailer"]) == "0"
    assert time.monotonic() - started < 30
