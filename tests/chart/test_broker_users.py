"""The built-in broker's users as the chart renders them, imported by a real RabbitMQ node.

The definitions in the chart's generated Secret are loaded the way the StatefulSet loads them
(definitions.import_backend = local_filesystem). The autoscaler's monitoring user must read
queue depths through the management API, and nothing else: no messages over AMQP, no changes
through the API. The admin user keeps full rights.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

import pika
import pytest
import requests
import yaml

from offload_autoscaler.sources import ManagementApiSource
from offload_autoscaler.spec import parse_scaled_object
from offload_core.grants import service_grants
from offload_core.topology import declare, stack_topology
from offload_testkit.k8s_tools import tool
from offload_testkit.rabbitmq import PrivateBroker

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "offload"


def rendered(template: str, *sets: str) -> dict:
    args = [tool("helm"), "template", "r", str(CHART), "-s", template]
    for value in sets:
        args += ["--set", value]
    result = subprocess.run(args, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    return yaml.safe_load(result.stdout)


@pytest.fixture(scope="module")
def broker_with_chart_users(tmp_path_factory):
    secret = rendered("templates/rabbitmq/secret.yaml")["stringData"]
    config = rendered("templates/rabbitmq/configmap.yaml")["data"]["offload.conf"]
    assert "definitions.local.path = /etc/rabbitmq/definitions/definitions.json" in config
    workdir = tmp_path_factory.mktemp("broker-users")
    definitions = workdir / "definitions.json"
    definitions.write_text(secret["definitions.json"])
    broker = PrivateBroker(workdir / "rabbitmq")
    conf = workdir / "rabbitmq" / "rabbitmq.conf"
    conf.write_text(
        conf.read_text()
        + f"definitions.import_backend = local_filesystem\ndefinitions.local.path = {definitions}\n"
    )
    broker.http.auth = (secret["username"], secret["password"])  # no guest: the chart's users only
    broker.start()
    yield broker, secret
    broker.stop()


def local(url: str, broker: PrivateBroker, port: int) -> str:
    """The Secret's URL with the in-cluster host replaced by the test node's address."""
    parts = urlsplit(url)
    return parts._replace(netloc=f"{parts.username}:{parts.password}@127.0.0.1:{port}").geturl()


def test_only_the_charts_users_exist(broker_with_chart_users):
    broker, secret = broker_with_chart_users
    users = {line.split("\t")[0] for line in broker.ctl("list_users", "--quiet").splitlines()[1:]}
    # No guest, no default user: the administrator, the autoscaler's monitoring user and one
    # user per service that talks AMQP.
    assert users == {
        secret["username"],
        "offload-monitoring",
        "offload-web",
        "offload-mailer",
        "offload-stats",
    }


def test_the_charts_grants_are_generated_from_the_topology():
    """files/broker-grants.json is what `python -m offload_core.grants` prints."""
    generated = subprocess.run(
        [sys.executable, "-m", "offload_core.grants"], capture_output=True, text=True, timeout=60, check=True
    ).stdout
    assert (CHART / "files" / "broker-grants.json").read_text() == generated, (
        "charts/offload/files/broker-grants.json is stale: "
        "python -m offload_core.grants > charts/offload/files/broker-grants.json"
    )


def admin_password_holders(docs: list[dict]) -> set[str]:
    """Workloads whose pods read the broker Secret's administrator password."""
    holders = set()
    for d in docs:
        if d["kind"] not in ("Deployment", "StatefulSet", "Job", "Pod"):
            continue
        spec = d["spec"] if d["kind"] == "Pod" else d["spec"]["template"]["spec"]
        for container in spec.get("initContainers", []) + spec["containers"]:
            for env in container.get("env", []):
                ref = (env.get("valueFrom") or {}).get("secretKeyRef") or {}
                if ref.get("name") == "r-offload-rabbitmq" and ref.get("key") in ("password", "amqp-url"):
                    holders.add(
                        d["metadata"]["name"].rsplit("-", 1)[0]
                        if d["kind"] == "Job"
                        else d["metadata"]["name"]
                    )
    return holders


def test_the_administrator_password_is_in_no_services_pod():
    """Only the broker and the topology Job read it. Control: with a Secret of the user's own
    (one user for everything) every service does."""

    def docs(*sets: str) -> list[dict]:
        args = [tool("helm"), "template", "r", str(CHART)]
        for value in sets:
            args += ["--set", value]
        out = subprocess.run(args, capture_output=True, text=True, timeout=60, check=True).stdout
        return [d for d in yaml.safe_load_all(out) if d]

    assert admin_password_holders(docs()) == {"r-offload-rabbitmq", "r-offload-topology"}
    shared = admin_password_holders(docs("rabbitmq.auth.existingSecret=r-offload-rabbitmq"))
    assert {"r-offload-web", "r-offload-mailer", "r-offload-stats-runner", "r-offload-autoscaler"} <= shared


def test_the_monitoring_user_reads_queue_depths_and_nothing_else(broker_with_chart_users):
    broker, secret = broker_with_chart_users
    admin_url = local(secret["amqp-url"], broker, broker.amqp_port)
    connection = pika.BlockingConnection(pika.URLParameters(admin_url))
    channel = connection.channel()
    channel.confirm_delivery()
    declare(admin_url, stack_topology())
    for _ in range(3):
        channel.basic_publish("", "mailer.signups.high", b"{}")
    connection.close()

    monitoring = local(secret["monitoring-url"], broker, broker.management_port)
    spec = parse_scaled_object(
        {
            "name": "mailer",
            "scaleTargetRef": {"name": "offload-mailer"},
            "triggers": [
                {
                    "type": "rabbitmq",
                    "metadata": {
                        "protocol": "http",
                        "queueName": "mailer.signups.high",
                        "value": "10",
                        "host": monitoring,
                    },
                }
            ],
        },
        "test",
    )
    source = ManagementApiSource(spec.triggers[0].host)
    deadline = time.monotonic() + 15
    reading = source.read(spec.triggers[0])
    while reading.value != 3 and time.monotonic() < deadline:  # the depth is sampled
        time.sleep(0.3)
        reading = source.read(spec.triggers[0])
    assert reading.error is None and reading.value == 3

    auth = ("offload-monitoring", secret["monitoring-password"])
    api = f"http://127.0.0.1:{broker.management_port}/api"
    assert requests.delete(f"{api}/queues/%2F/mailer.signups.high", auth=auth, timeout=5).status_code == 401
    created = requests.put(f"{api}/users/intruder", auth=auth, json={"password": "x", "tags": ""}, timeout=5)
    assert created.status_code == 401
    monitoring_amqp = (
        f"amqp://offload-monitoring:{secret['monitoring-password']}@127.0.0.1:{broker.amqp_port}/%2F"
    )
    connection = pika.BlockingConnection(pika.URLParameters(monitoring_amqp))
    with pytest.raises(pika.exceptions.ChannelClosedByBroker) as refused:
        connection.channel().basic_get("mailer.signups.high")
    assert refused.value.reply_code == 403
    with pytest.raises(pika.exceptions.ChannelClosedByBroker):
        connection.channel().queue_declare("made-by-monitoring")
    connection.close()


def test_the_autoscaler_and_keda_use_the_monitoring_user():
    result = subprocess.run(
        [tool("helm"), "template", "r", str(CHART)], capture_output=True, text=True, timeout=60
    )
    docs = [d for d in yaml.safe_load_all(result.stdout) if d]
    [autoscaler] = [
        d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "r-offload-autoscaler"
    ]
    env = {e["name"]: e for e in autoscaler["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["OFFLOAD_MANAGEMENT_URL"]["value"].startswith(
        "http://$(RABBITMQ_MONITORING_USERNAME):$(RABBITMQ_MONITORING_PASSWORD)@"
    )
    keda_docs = subprocess.run(
        [tool("helm"), "template", "r", str(CHART), "--set", "autoscaling.engine=keda"],
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout
    [auth] = [d for d in yaml.safe_load_all(keda_docs) if d and d["kind"] == "TriggerAuthentication"]
    assert auth["spec"]["secretTargetRef"][0]["key"] == "monitoring-url"
    # With a Secret of the user's own, the chart cannot know a second user: the admin's URL.
    own = json.dumps(rendered("templates/rabbitmq/configmap.yaml", "rabbitmq.auth.existingSecret=mine"))
    assert "definitions" not in own


def test_each_service_user_holds_its_grant_and_nothing_more(broker_with_chart_users):
    """The imported permissions are the grants, and they hold on the wire: the web's user may
    publish a fact but not consume the mailer's queue, which the administrator (the control)
    and the mailer's user may."""
    broker, secret = broker_with_chart_users
    grants = service_grants(stack_topology())
    api = f"http://127.0.0.1:{broker.management_port}/api"
    for service in ("web", "mailer", "stats"):
        user = secret[f"{service}-username"]
        held = requests.get(f"{api}/permissions/%2F/{user}", auth=broker.http.auth, timeout=5).json()
        assert {k: held[k] for k in ("configure", "write", "read")} == grants[service].permissions(), service
    declare(local(secret["amqp-url"], broker, broker.amqp_port), stack_topology())  # a no-op by now

    def as_user(service: str) -> str:
        user, password = secret[f"{service}-username"], secret[f"{service}-password"]
        return f"amqp://{user}:{password}@127.0.0.1:{broker.amqp_port}/%2F"

    def consume(url: str) -> int:
        connection = pika.BlockingConnection(pika.URLParameters(url))
        try:
            connection.channel().basic_get("mailer.signups.high")
            return 200
        except pika.exceptions.ChannelClosedByBroker as refused:
            return refused.reply_code
        finally:
            if connection.is_open:
                connection.close()

    connection = pika.BlockingConnection(pika.URLParameters(as_user("web")))
    channel = connection.channel()
    channel.confirm_delivery()
    channel.basic_publish("offload.events", "signup.created.high", b"{}")
    connection.close()
    assert consume(as_user("web")) == 403
    assert consume(as_user("stats")) == 403
    assert consume(as_user("mailer")) == 200
    assert consume(local(secret["amqp-url"], broker, broker.amqp_port)) == 200
